"""QIDO-RS query parameters (PS3.18 §8.3.4) turned into SQL conditions on the index.

Matching follows PS3.4 C.2.2.2: single value, wildcard (``*`` any run, ``?`` one
character) for string VRs, range (``a-b``, ``-b``, ``a-``) for DA and TM, and UID
lists (comma or backslash separated) for UI. Person names match case-insensitively;
with ``fuzzymatching=true`` a value matches the start of any name component, so
``smi`` finds ``Smith^John`` and ``John^Smithers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_

from archive.uids import is_valid_uid
from dicomweb.dicomjson import ATTRS, LEVELS, Attr, lookup

_CONTROL = {"limit", "offset", "fuzzymatching", "includefield"}
_STRING_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"}


class BadQuery(ValueError):
    """A query parameter PS3.18 says is invalid (answered with 400)."""


@dataclass
class Query:
    """A parsed QIDO-RS request."""

    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    included: set[str] | None = None  # tags asked for by includefield
    include_all: bool = False
    limit: int = 0
    offset: int = 0
    fuzzy: bool = False
    ignored: list[str] = field(default_factory=list)  # unsupported keys, for the Warning header


def _like(value: str) -> str:
    """A DICOM wildcard value as a LIKE pattern with ``\\`` as the escape character."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _string(column: Any, value: str, vr: str, fuzzy: bool) -> ColumnElement[bool] | None:
    if value.strip("*") == "":
        return None  # universal match
    wildcard = "*" in value or "?" in value
    if vr == "PN":
        target, pattern = func.lower(column), _like(value.lower())
        if fuzzy:
            # Start of any component: family, given, middle... (^), and of any word.
            starts = [target.like(pattern + "%", escape="\\")]
            for separator in ("^", " ", "="):
                starts.append(target.like(f"%{_like(separator)}{pattern}%", escape="\\"))
            return or_(*starts)
        return target.like(pattern, escape="\\") if wildcard else target == value.lower()
    return column.like(_like(value), escape="\\") if wildcard else column == value


def _multi_valued(column: Any, value: str) -> ColumnElement[bool] | None:
    """ModalitiesInStudy holds ``CT\\SEG``: a value matches any one of the values."""
    if value.strip("*") == "":
        return None
    wrapped = literal("\\") + column + literal("\\")
    return or_(*(wrapped.like(f"%\\\\{_like(v)}\\\\%", escape="\\") for v in value.replace(",", "\\").split("\\")))


def _range(column: Any, value: str, vr: str) -> ColumnElement[bool]:
    """DA/TM single value or range. Bounds may be partial (``2020``, ``13``): a lower
    bound compares as given, an upper bound is padded with 9s so it covers its whole
    precision (``-2020`` includes 20201231, ``-13`` includes 135959)."""
    width = 8 if vr == "DA" else 13
    allowed = set("0123456789") | ({".", ":"} if vr == "TM" else set())

    def bound(text: str) -> str:
        text = text.strip()
        if not text or set(text) - allowed or len(text) > width:
            raise BadQuery(f"{text!r} is not a valid {vr} value")
        return text.replace(":", "")

    if "-" not in value:
        return column == bound(value) if vr == "DA" else column.like(_like(bound(value)) + "%", escape="\\")
    low, _, high = value.partition("-")
    if not low and not high:
        raise BadQuery(f"{value!r} is not a valid {vr} range")
    parts = [column != ""]  # an empty date is outside every range
    if low:
        parts.append(column >= bound(low))
    if high:
        parts.append(column <= bound(high).ljust(width, "9"))
    return and_(*parts)


def _uid_list(column: Any, value: str, keyword: str) -> ColumnElement[bool] | None:
    uids = [v.strip() for v in value.replace("\\", ",").split(",") if v.strip()]
    if not uids:
        return None
    bad = [uid for uid in uids if not is_valid_uid(uid)]
    if bad:
        raise BadQuery(f"{keyword}: {bad[0][:70]!r} is not a valid UID")
    return column == uids[0] if len(uids) == 1 else column.in_(uids)


def condition(attr: Attr, value: str, fuzzy: bool) -> ColumnElement[bool] | None:
    """The SQL condition for one matching key, or None for universal matching."""
    if attr.vr == "UI":
        return _uid_list(attr.column, value, attr.keyword)
    if attr.vr in ("DA", "TM"):
        return None if value in ("", "*") else _range(attr.column, value, attr.vr)
    if attr.vr == "IS":
        if value == "":
            return None
        try:
            return attr.column == int(value)
        except ValueError:
            raise BadQuery(f"{attr.keyword}: {value[:40]!r} is not an integer") from None
    if attr.keyword == "ModalitiesInStudy":
        return _multi_valued(attr.column, value)
    if attr.vr in _STRING_VRS:
        return _string(attr.column, value, attr.vr, fuzzy)
    raise BadQuery(f"{attr.keyword} cannot be matched")


def _integer(name: str, text: str, minimum: int) -> int:
    try:
        number = int(text)
    except ValueError:
        raise BadQuery(f"{name} must be an integer") from None
    if number < minimum:
        raise BadQuery(f"{name} must be at least {minimum}")
    return number


def parse(params: list[tuple[str, str]], level: str, max_limit: int, fixed: set[str] = frozenset()) -> Query:
    """Parse ``params`` for a search at ``level``; ``fixed`` names the keys the path
    already fixes (``/studies/{study}/series`` fixes StudyInstanceUID)."""
    query = Query(limit=max_limit)
    depth = LEVELS[level]
    values: list[tuple[Attr, str]] = []
    for key, value in params:
        if key == "limit":
            query.limit = min(_integer("limit", value, 1), max_limit)
        elif key == "offset":
            query.offset = _integer("offset", value, 0)
        elif key == "fuzzymatching":
            if value not in ("true", "false"):
                raise BadQuery("fuzzymatching must be true or false")
            query.fuzzy = value == "true"
        elif key == "includefield":
            for name in filter(None, (v.strip() for v in value.split(","))):
                if name == "all":
                    query.include_all = True
                    continue
                attr = lookup(name)
                tag = attr.tag if attr else name.upper() if len(name) == 8 and _is_hex(name) else None
                if tag is None:
                    tag = _keyword_tag(name)
                if tag is None:
                    raise BadQuery(f"includefield: {name[:64]!r} is neither a keyword nor a tag")
                query.included = (query.included or set()) | {tag}
        else:
            attr = lookup(key)
            if attr is None or attr.column is None or LEVELS[attr.level] > depth or attr.keyword in fixed:
                # PS3.18 §8.3.4.1: unsupported keys are ignored, and the response says so.
                query.ignored.append(key[:64])
                continue
            values.append((attr, value))
    for attr, value in values:  # after the loop: fuzzymatching may come last
        where = condition(attr, value, query.fuzzy)
        if where is not None:
            query.conditions.append(where)
        # A matching key is also a return key (PS3.18 §8.3.4.1.2).
        query.included = (query.included or set()) | {attr.tag}
    if query.include_all:
        query.included = (query.included or set()) | {attr.tag for attr in ATTRS}
    return query


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
        return True
    except ValueError:
        return False


def _keyword_tag(name: str) -> str | None:
    """Tag of any data dictionary keyword (for instance-level includefield)."""
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(name)
    return f"{tag:08X}" if tag is not None else None
