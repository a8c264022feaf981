"""Helpers to store analysis outputs over STOW-RS in the browser tests: Part 10 bytes
and a multipart/related request body."""

from __future__ import annotations

from io import BytesIO

from pydicom.dataset import Dataset


def part10(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def stow_body(datasets: list[Dataset], boundary: str = "l3net-viewer-fixture") -> tuple[bytes, str]:
    """A multipart/related STOW-RS request body of ``datasets`` and its Content-Type."""
    parts = []
    for ds in datasets:
        parts.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part10(ds) + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'
