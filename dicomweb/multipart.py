"""multipart/related (RFC 2387) bodies: written as a stream for WADO-RS, parsed from a
buffer for STOW-RS."""

from __future__ import annotations

import mmap
import uuid
from dataclasses import dataclass
from typing import Iterable, Iterator


class MalformedMultipart(ValueError):
    """The body is not the multipart/related its Content-Type announced (400)."""


def new_boundary() -> str:
    return f"l3net-{uuid.uuid4().hex}"


def content_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    """The Content-Type of a multipart/related response whose parts are ``part_type``."""
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return value + (f"; transfer-syntax={transfer_syntax}" if transfer_syntax else "")


def stream(parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    """The body: each part's headers and chunks between boundary delimiters."""
    delimiter = f"--{boundary}\r\n".encode()
    for headers, chunks in parts:
        yield delimiter + "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode() + b"\r\n"
        yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


@dataclass(frozen=True)
class Part:
    """One body part: lower-cased header names, and its content as a view (no copy)."""

    headers: dict[str, str]
    content: memoryview

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def parse_params(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype; a=b; c="d"`` → ("type/subtype", {"a": "b", "c": "d"})."""
    main, *rest = value.split(";")
    params: dict[str, str] = {}
    for item in rest:
        name, _, param = item.partition("=")
        if name.strip():
            params[name.strip().lower()] = param.strip().strip('"')
    return main.strip().lower(), params


def parse(raw: bytes | mmap.mmap, boundary: str) -> list[Part]:
    """Split a multipart body into parts (RFC 2046 §5.1.1). The preamble and epilogue
    are ignored; a body without a closing delimiter is malformed. ``raw`` may be a
    memory map of a spooled request, so parts are views, never copies."""
    if not boundary or len(boundary) > 70:
        raise MalformedMultipart("the Content-Type has no usable boundary parameter")
    view = memoryview(raw)
    parts: list[Part] = []
    try:
        return _split(raw, view, boundary, parts)
    except BaseException:
        # Views pin a memory map open; let go of them before the error travels up.
        for part in parts:
            part.content.release()
        view.release()
        raise


def _split(raw: bytes | mmap.mmap, view: memoryview, boundary: str, parts: list[Part]) -> list[Part]:
    dash = b"--" + boundary.encode("latin-1")
    # The first delimiter may open the body; every later one follows a CRLF.
    if raw[: len(dash)] == dash:
        position = 0
    else:
        position = raw.find(b"\r\n" + dash)
        if position < 0:
            raise MalformedMultipart("no boundary delimiter found in the body")
        position += 2
    while True:
        after = position + len(dash)
        if raw[after : after + 2] == b"--":
            return parts  # the close delimiter
        line_end = raw.find(b"\r\n", after)
        if line_end < 0:
            raise MalformedMultipart("the body ends inside a boundary line")
        if raw[line_end : line_end + 4] == b"\r\n\r\n":
            header_end = line_end  # a part with no headers
        else:
            header_end = raw.find(b"\r\n\r\n", line_end)
        if header_end < 0:
            raise MalformedMultipart(f"part {len(parts) + 1} has no end of headers")
        headers: dict[str, str] = {}
        for line in bytes(raw[line_end + 2 : header_end]).split(b"\r\n"):
            if not line:
                continue
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                raise MalformedMultipart(f"part {len(parts) + 1} has a malformed header line")
            headers[name.strip().lower()] = value.strip()
        start = header_end + 4
        end = raw.find(b"\r\n" + dash, start)
        if end < 0:
            raise MalformedMultipart(f"part {len(parts) + 1} is not closed by a boundary delimiter")
        parts.append(Part(headers, view[start:end]))
        position = end + 2
