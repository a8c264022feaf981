"""WADO-RS metadata (PS3.18 §10.4.1.1.2) from the headers stored at ingest.

``Instance.metadata_json`` already is the DICOM JSON of the header, with large values
replaced by relative ``bulk/{tag}`` BulkDataURIs. A response is therefore assembled as
text: the relative URIs are made absolute and Pixel Data's BulkDataURI is added, with
no JSON parsing and no object read, whatever the size of the series.
"""

from __future__ import annotations

from archive.index.models import Instance

# json.dumps writes exactly this before a relative URI (and escapes any quote inside a
# string value), so the marker can only ever match a BulkDataURI value.
_RELATIVE = '"BulkDataURI": "bulk/'


def absolute_bulk(header_json: str, instance_url: str) -> str:
    """The stored header with absolute BulkDataURIs below ``instance_url``."""
    return header_json.replace(_RELATIVE, f'"BulkDataURI": "{instance_url}/bulk/')


def instance_metadata(instance: Instance, instance_url: str) -> str:
    """One instance's metadata object, as JSON text."""
    text = absolute_bulk(instance.metadata_json, instance_url)
    if instance.rows and '"7FE00010"' not in text:
        # The header was read without pixel data; point to the frames (PS3.18 F.2.6).
        vr = "OB" if _encapsulated(instance.transfer_syntax_uid) else "OW"
        pixel = f'"7FE00010": {{"vr": "{vr}", "BulkDataURI": "{instance_url}/bulk/7FE00010"}}'
        text = text[:-1].rstrip() + (", " if text.strip() != "{}" else "") + pixel + "}"
    if '"00083002"' not in text:
        # AvailableTransferSyntaxUID tells a viewer how frames come "as stored".
        syntax = f'"00083002": {{"vr": "UI", "Value": ["{instance.transfer_syntax_uid}"]}}'
        text = text[:-1].rstrip() + (", " if text.strip() != "{}" else "") + syntax + "}"
    return text


def _encapsulated(syntax: str) -> bool:
    return syntax.startswith("1.2.840.10008.1.2.4.") or syntax == "1.2.840.10008.1.2.5"
