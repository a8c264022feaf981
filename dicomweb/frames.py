"""Frames of stored instances: located once per object, then read by offset.

The first request for an instance parses its header (no pixel data) and records where
each frame lies in the object: one span for native pixel data, the fragment spans for
encapsulated (compressed) data. Later frames of the same instance cost one seek and one
read. The layouts sit in a bounded LRU cache owned by the app.

Frames go out as stored (raw little-endian, or the compressed bitstream), or decoded
to raw little-endian when the client asked for uncompressed data.
"""

from __future__ import annotations

import io
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pydicom
import pydicom.encaps
import pydicom.pixels
from pydicom.dataset import Dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from archive.objectstore import ObjectStore

_ITEM = 0xE000FFFE  # (FFFE,E000) read as a little-endian uint32
_SEQUENCE_END = 0xE0DDFFFE
_PIXEL_DATA = 0x7FE0_0010


class FrameNotFound(LookupError):
    """The instance has no such frame (or no pixel data at all)."""


@dataclass(frozen=True)
class Layout:
    """Where one instance's frames are.

    ``spans[i]``: the (offset, length) pieces of frame ``i + 1`` in the object; one
    piece for native data, one per fragment for encapsulated data. ``whole`` holds the
    decoded dataset when the object cannot be read by offset (deflated)."""

    transfer_syntax: str
    header: Dataset
    spans: tuple[tuple[tuple[int, int], ...], ...]
    whole: Dataset | None = None

    @property
    def encapsulated(self) -> bool:
        return UID(self.transfer_syntax).is_encapsulated

    @property
    def frame_count(self) -> int:
        return len(self.spans) if self.whole is None else int(self.header.get("NumberOfFrames") or 1)


def native_frame_length(header: Dataset) -> int:
    """Bytes of one uncompressed frame."""
    bits = int(header.BitsAllocated)
    pixels = int(header.Rows) * int(header.Columns) * int(header.get("SamplesPerPixel", 1))
    return (pixels * bits + 7) // 8


def _fragments(fp: BinaryIO) -> tuple[list[int], list[tuple[int, int]]]:
    """Basic offset table and (offset, length) of each fragment of encapsulated pixel
    data; ``fp`` is just past the Pixel Data element header."""
    offsets: list[int] = []
    fragments: list[tuple[int, int]] = []
    first = True
    while True:
        header = fp.read(8)
        if len(header) < 8:
            break
        tag, length = struct.unpack("<II", header)
        if tag == _SEQUENCE_END:
            break
        if tag != _ITEM:
            raise ValueError(f"unexpected tag {tag:08X} in encapsulated pixel data")
        if first:
            table = fp.read(length)
            offsets = list(struct.unpack(f"<{length // 4}I", table)) if length else []
            first = False
            continue
        fragments.append((fp.tell(), length))
        fp.seek(length, io.SEEK_CUR)
    return offsets, fragments


def _group(offsets: list[int], fragments: list[tuple[int, int]], frames: int) -> list[tuple[tuple[int, int], ...]]:
    """Fragments per frame: all in one frame, one each, or as the offset table says."""
    if frames == 1:
        return [tuple(fragments)]
    if len(fragments) == frames:
        return [(fragment,) for fragment in fragments]
    if len(offsets) == frames and fragments:
        # Offsets count from the first fragment's item tag, each item being 8 + length.
        start = fragments[0][0] - 8
        bounds = [start + offset for offset in offsets] + [fragments[-1][0] + fragments[-1][1]]
        return [
            tuple(f for f in fragments if bounds[i] <= f[0] - 8 < bounds[i + 1]) for i in range(frames)
        ]
    raise ValueError(f"cannot tell {len(fragments)} fragments apart into {frames} frames without an offset table")


class FrameSource:
    """Reads frames from the object store, caching each instance's layout."""

    def __init__(self, store: ObjectStore, cache_entries: int = 4096) -> None:
        self.store = store
        self.cache_entries = cache_entries
        self._layouts: OrderedDict[str, Layout] = OrderedDict()
        self._lock = threading.Lock()

    # -- object access -------------------------------------------------------------
    def _open(self, key: str) -> BinaryIO:
        # A local file is read in place (seek + read of just the frame); other stores
        # hand over the whole object.
        local = getattr(self.store, "local_path", None)
        if local is not None:
            return open(local(key), "rb")
        return io.BytesIO(self.store.get_bytes(key))

    def layout(self, key: str) -> Layout:
        with self._lock:
            cached = self._layouts.get(key)
            if cached is not None:
                self._layouts.move_to_end(key)
                return cached
        layout = self._read_layout(key)
        with self._lock:
            self._layouts[key] = layout
            while len(self._layouts) > self.cache_entries:
                self._layouts.popitem(last=False)
        return layout

    def _read_layout(self, key: str) -> Layout:
        with self._open(key) as fp:
            header = pydicom.dcmread(fp, stop_before_pixels=True)
            syntax = str(header.file_meta.TransferSyntaxUID)
            if syntax == DeflatedExplicitVRLittleEndian:
                fp.seek(0)
                whole = pydicom.dcmread(fp)
                return Layout(syntax, header, (), whole)
            start = fp.tell()
            element = fp.read(12)
            if len(element) < 8 or struct.unpack("<I", element[:4])[0] != 0x0010_7FE0:
                return Layout(syntax, header, ())  # no pixel data
            frames = int(header.get("NumberOfFrames") or 1)
            if UID(syntax).is_implicit_VR:
                length, value_start = struct.unpack("<I", element[4:8])[0], start + 8
            else:
                length, value_start = struct.unpack("<I", element[8:12])[0], start + 12
            if UID(syntax).is_encapsulated:
                fp.seek(value_start)
                offsets, fragments = _fragments(fp)
                return Layout(syntax, header, tuple(_group(offsets, fragments, frames)))
            size = native_frame_length(header)
            if int(header.BitsAllocated) == 1:
                size = length // frames  # packed bits: frames are not byte-aligned in general
            return Layout(syntax, header, tuple(((value_start + i * size, size),) for i in range(frames)))

    # -- frames --------------------------------------------------------------------
    def stored_frame(self, key: str, number: int) -> tuple[bytes, str]:
        """Frame ``number`` (1-based) as stored, and the transfer syntax it is in."""
        layout = self.layout(key)
        if not 1 <= number <= layout.frame_count:
            raise FrameNotFound(f"frame {number} of {layout.frame_count}")
        if layout.whole is not None:
            return self._decoded(layout, number), ExplicitVRLittleEndian
        with self._open(key) as fp:
            pieces = []
            for offset, length in layout.spans[number - 1]:
                fp.seek(offset)
                pieces.append(fp.read(length))
        syntax = layout.transfer_syntax
        if not layout.encapsulated:
            syntax = ExplicitVRLittleEndian  # raw little-endian pixels, whatever the header encoding
        return b"".join(pieces), syntax

    def native_frame(self, key: str, number: int) -> bytes:
        """Frame ``number`` as uncompressed little-endian pixels (decoded if need be)."""
        layout = self.layout(key)
        if layout.encapsulated or layout.whole is not None:
            if not 1 <= number <= layout.frame_count:
                raise FrameNotFound(f"frame {number} of {layout.frame_count}")
            return self._decoded(layout, number) if layout.whole is not None else self._decode(key, layout, number)
        return self.stored_frame(key, number)[0]

    def _decode(self, key: str, layout: Layout, number: int) -> bytes:
        encoded, syntax = self.stored_frame(key, number)
        ds = Dataset()
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
        for keyword in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored", "HighBit",
                        "PixelRepresentation", "PhotometricInterpretation", "PlanarConfiguration"):
            if keyword in layout.header:
                setattr(ds, keyword, layout.header[keyword].value)
        ds.NumberOfFrames = 1
        ds.PixelData = pydicom.encaps.encapsulate([encoded])
        ds["PixelData"].VR = "OB"
        array = pydicom.pixels.pixel_array(ds, raw=True)
        return native_bytes(array, int(layout.header.BitsAllocated))

    @staticmethod
    def _decoded(layout: Layout, number: int) -> bytes:
        assert layout.whole is not None
        array = pydicom.pixels.pixel_array(layout.whole, index=number - 1, raw=True)
        return native_bytes(array, int(layout.whole.BitsAllocated))

    def pixels(self, key: str, number: int) -> np.ndarray:
        """Frame ``number`` as an array (rows, columns[, samples]) of stored values."""
        layout = self.layout(key)
        header = layout.header
        raw = self.native_frame(key, number)
        bits = int(header.BitsAllocated)
        signed = int(header.get("PixelRepresentation", 0)) == 1
        dtype = {8: "i1" if signed else "u1", 16: "<i2" if signed else "<u2", 32: "<i4" if signed else "<u4"}.get(bits)
        if dtype is None:
            raise FrameNotFound(f"cannot render {bits}-bit pixels")
        array = np.frombuffer(raw, dtype=dtype)
        samples = int(header.get("SamplesPerPixel", 1))
        shape = (int(header.Rows), int(header.Columns)) + ((samples,) if samples > 1 else ())
        if samples > 1 and int(header.get("PlanarConfiguration", 0)) == 1:
            return array.reshape((samples, int(header.Rows), int(header.Columns))).transpose(1, 2, 0)
        return array.reshape(shape)


def native_bytes(array: np.ndarray, bits_allocated: int) -> bytes:
    """Decoded pixels as native (uncompressed) pixel data: little-endian words, or, for
    1-bit pixels (BINARY SEG), bits packed 8 to a byte, low bit first (PS3.5 8.1.1).
    pydicom decodes 1-bit pixels to one byte each, which is not the native form."""
    if bits_allocated == 1:
        return pydicom.pixels.pack_bits(array, pad=False)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
