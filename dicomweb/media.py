"""Accept-header negotiation for WADO-RS (PS3.18 §8.7): which media type and transfer
syntax a response uses, or 406 when we can offer nothing the client accepts."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException
from pydicom.uid import UID

from dicomweb.multipart import parse_params

EXPLICIT_LE = "1.2.840.10008.1.2.1"
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTETS = "application/octet-stream"

# Bitstream media types of compressed frames and their default transfer syntaxes
# (PS3.18 Table 8.7.3-2 and -5).
_MEDIA_OF_SYNTAX = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
DEFAULT_SYNTAX = {
    "image/jpeg": "1.2.840.10008.1.2.4.70",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/dicom-rle": "1.2.840.10008.1.2.5",
    "image/x-dicom-rle": "1.2.840.10008.1.2.5",
    OCTETS: EXPLICIT_LE,
    DICOM: EXPLICIT_LE,
}


#: What an instance can be re-encoded into on retrieval: Explicit VR Little Endian,
#: Deflated, and the lossless compressions our encoders write (pydicom's RLE encoder,
#: pyjpegls, pylibjpeg-openjpeg). Lossy syntaxes are never produced: a lossy copy would
#: have to say so (Lossy Image Compression) and is not what a PACS or a viewer expects.
TRANSCODABLE = frozenset({
    EXPLICIT_LE,
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
})


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header."""

    type: str  # e.g. multipart/related, application/dicom+json, */*
    part_type: str | None  # the type parameter of multipart/related
    transfer_syntax: str | None
    q: float


def accepted(header: str | None) -> list[MediaRange]:
    """The Accept header's ranges, most preferred first; ``*/*`` when absent."""
    ranges = []
    for item in _split(header or "*/*"):
        main, params = parse_params(item)
        if not main:
            continue
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 0.0
        part_type = params.get("type", "").lower() or None
        ranges.append(MediaRange(main, part_type, params.get("transfer-syntax"), q))
    return sorted((r for r in ranges if r.q > 0), key=lambda r: -r.q)


def _split(header: str) -> list[str]:
    """Split on commas outside quotes (``type="a, b"`` stays whole)."""
    items, current, quoted = [], [], False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def not_acceptable(accept: str | None, offer: str) -> HTTPException:
    return HTTPException(406, f"cannot answer Accept: {(accept or '')[:200]!r}; this resource offers {offer}")


def negotiate_json(accept: str | None) -> str:
    """application/dicom+json (or application/json) for QIDO-RS and metadata."""
    for media in accepted(accept):
        if media.type in (DICOM_JSON, "application/json", "application/*", "*/*"):
            return DICOM_JSON if media.type != "application/json" else "application/json"
    raise not_acceptable(accept, DICOM_JSON)


def negotiate_instances(accept: str | None, stored: set[str]) -> str | None:
    """For retrieving instances as multipart/related; type="application/dicom": the
    transfer syntax to send, or None for "each as stored". ``stored``: the transfer
    syntaxes of the instances to send. We transcode into :data:`TRANSCODABLE` only."""
    for media in accepted(accept):
        if media.type == "multipart/related" and media.part_type in ("*/*", "*"):
            return None  # parts of any type: as stored
        if media.type in ("*/*", "multipart/*") or (media.type == "multipart/related" and media.part_type in (None, DICOM)):
            wanted = media.transfer_syntax or EXPLICIT_LE
        elif media.type == DICOM:  # a bare application/dicom: the same, in one multipart body
            wanted = media.transfer_syntax or EXPLICIT_LE
        else:
            continue
        if wanted == "*" or stored <= {wanted}:
            return None
        if wanted in TRANSCODABLE:
            return wanted
    raise not_acceptable(accept, 'multipart/related; type="application/dicom" as stored (transfer-syntax=*), '
                         f"or transcoded into one of {', '.join(sorted(TRANSCODABLE))}")


@dataclass(frozen=True)
class FrameChoice:
    """How to send frames: as stored, or decoded to native little endian; and the
    Content-Type of each part."""

    as_stored: bool
    part_type: str

    def part_content_type(self, syntax: str) -> str:
        return f"{self.part_type}; transfer-syntax={syntax}"


def negotiate_frames(accept: str | None, stored: str) -> FrameChoice:
    """Frames (and pixel bulk data) of an instance stored in ``stored``."""
    encapsulated = UID(stored).is_encapsulated
    stored_media = _MEDIA_OF_SYNTAX.get(stored, OCTETS)
    for media in accepted(accept):
        if media.type in ("*/*", "multipart/*"):
            return FrameChoice(False, OCTETS)
        if media.type == "multipart/related" and media.part_type in ("*/*", "*"):
            # Parts of any type: the frames as they are, labelled with their syntax.
            return FrameChoice(True, stored_media if encapsulated else OCTETS)
        if media.type == "multipart/related":
            part = media.part_type or OCTETS
        elif media.type in (OCTETS, "image/jpeg", "image/jls", "image/jp2", "image/dicom-rle", "image/x-dicom-rle"):
            part = media.type  # single-part types: we still answer with multipart/related
        else:
            continue
        wanted = media.transfer_syntax or DEFAULT_SYNTAX.get(part)
        if part == OCTETS:
            if wanted == "*" or (wanted == stored and encapsulated):
                return FrameChoice(True, OCTETS)
            if wanted == EXPLICIT_LE:
                return FrameChoice(False, OCTETS)
        elif encapsulated and part in (stored_media, "image/x-dicom-rle" if stored_media == "image/dicom-rle" else ""):
            if wanted in ("*", stored):
                return FrameChoice(True, part)
    offer = f"{OCTETS} (uncompressed, or transfer-syntax=* as stored)"
    if encapsulated:
        offer += f", or {stored_media} with transfer-syntax={stored}"
    raise not_acceptable(accept, offer)


def negotiate_rendered(accept: str | None, several: bool = False) -> str:
    """image/jpeg (the default) or image/png. ``several``: a study or series, sent as
    multipart/related parts of that type, which the Accept may name as
    ``multipart/related; type="image/png"``."""
    for media in accepted(accept):
        if several and media.type == "multipart/related":
            if media.part_type in ("image/jpeg", "image/png"):
                return media.part_type
            if media.part_type in (None, "*/*", "image/*"):
                return "image/jpeg"
        if media.type in ("image/jpeg", "image/png"):
            return media.type
        if media.type in ("*/*", "image/*", "multipart/*"):
            return "image/jpeg"
    raise not_acceptable(accept, 'multipart/related; type="image/jpeg" or "image/png"' if several else "image/jpeg or image/png")
