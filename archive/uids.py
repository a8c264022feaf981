"""The PS3.5 §9 UID syntax, checked before a UID becomes an object key or a path.

A UID is at most 64 characters of digit components separated by single dots; a
component is ``0`` or has no leading zero. Anything else (``..``, ``/``, spaces,
trailing NUL padding left in by a sender) is refused, which is also what keeps a
hostile UID from escaping the key layout.
"""

from __future__ import annotations

import re

# fullmatch, not match with "$": "$" also matches before a trailing newline.
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


class InvalidUID(ValueError):
    """A value that is not a PS3.5 UID."""


def is_valid_uid(value: object) -> bool:
    """True when ``value`` is a string in the PS3.5 UID syntax."""
    return isinstance(value, str) and 0 < len(value) <= 64 and _UID.fullmatch(value) is not None


def check_uid(value: object, what: str = "UID") -> str:
    """Return ``value`` unchanged, or raise :class:`InvalidUID` naming ``what``."""
    if not is_valid_uid(value):
        raise InvalidUID(f"{what} {value!r} is not a valid DICOM UID (PS3.5 §9)")
    return value  # type: ignore[return-value]
