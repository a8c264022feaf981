"""PS3.5 §9 UID syntax (archive.uids) and the object keys built from UIDs (archive.keys)."""

from __future__ import annotations

import pytest

from archive.keys import instance_key, result_key
from archive.uids import InvalidUID, check_uid, is_valid_uid

GOOD = [
    "0",
    "1",
    "1.2.840.10008.1.2.1",
    "1.3.6.1.4.1.14519.5.2.1.6279.6001.298806137288633453246975630178",
    "2.25.0.10",
    "1." + "2" * 62,  # exactly 64 characters
]

BAD = [
    "",  # empty
    "01.2",  # leading zero in the first component
    "1.02.3",  # leading zero in a middle component
    "1.2.00",  # leading zero in the last component
    "1." + "2" * 63,  # 65 characters
    "1..2",
    "..",
    "1.2.",
    ".1.2",
    "1/2",
    "1.2/../3",
    "../1.2",
    "1.2.3 ",  # trailing space padding
    "1.2.3\x00",  # trailing NUL padding
    " 1.2.3",
    "1.2.3\n",  # a trailing newline must not slip past the end anchor
    "1.2.3\r\n",
    "1.2.a",
    "1.2.-3",
    "1,2,3",
    "١.٢",  # non-ASCII digits
]


@pytest.mark.parametrize("uid", GOOD)
def test_valid_uids_are_accepted(uid):
    assert is_valid_uid(uid)
    assert check_uid(uid) is uid


@pytest.mark.parametrize("uid", BAD)
def test_invalid_uids_are_refused(uid):
    assert not is_valid_uid(uid)
    with pytest.raises(InvalidUID, match="Study Instance UID"):
        check_uid(uid, "Study Instance UID")


@pytest.mark.parametrize("value", [None, 1, 1.2, b"1.2.3", ["1.2"]])
def test_non_strings_are_refused(value):
    assert not is_valid_uid(value)
    with pytest.raises(InvalidUID):
        check_uid(value)


def test_invalid_uid_is_a_value_error():
    assert issubclass(InvalidUID, ValueError)


def test_instance_key_layout():
    assert instance_key("1.2", "1.2.3", "1.2.3.4") == "studies/1.2/series/1.2.3/instances/1.2.3.4.dcm"


@pytest.mark.parametrize(
    "study, series, sop, named",
    [
        ("../../etc", "1.2", "1.3", "Study"),
        ("1.2", "1/../../x", "1.3", "Series"),
        ("1.2", "1.3", "..", "SOP"),
        ("1.2", "1.3", "1.4/../../../passwd", "SOP"),
        ("1.2", "1.3", "1.4\x00", "SOP"),
        ("1.2", "1.3", "1.4\n", "SOP"),
        ("", "1.3", "1.4", "Study"),
    ],
)
def test_instance_key_refuses_injection(study, series, sop, named):
    with pytest.raises(InvalidUID, match=named):
        instance_key(study, series, sop)


def test_result_key_layout():
    job = "0b7e4f6c-3f1e-4a51-9b0a-6f3f0f1f2a3b"
    assert result_key("1.2.3", job, "summary.json") == f"studies/1.2.3/results/{job}/summary.json"


@pytest.mark.parametrize(
    "study, job, name",
    [
        ("1.2", "../x", "summary.json"),
        ("1.2", "a/b", "summary.json"),
        ("1.2", "", "summary.json"),
        ("1.2", "job.1", "summary.json"),
        ("1.2", "abc", "../summary.json"),
        ("1.2", "abc", "x/y.json"),
        ("1.2", "abc", ".."),
        ("1.2", "abc", ".hidden"),
        ("1.2", "abc", ""),
        ("1.2", "abc", "a\\..\\b"),
        ("1.2", "abc", "a\x00b"),
        ("../1.2", "abc", "summary.json"),
    ],
)
def test_result_key_refuses_injection(study, job, name):
    with pytest.raises(ValueError):
        result_key(study, job, name)
