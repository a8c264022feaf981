"""Object stores (archive.objectstore): the same contract on the filesystem and on S3 (moto)."""

from __future__ import annotations

import base64
import hashlib
import os
import threading

import pytest

from archive.objectstore import ObjectNotFound, open_object_store
from archive.objectstore.filesystem import FilesystemObjectStore, write_durably
from archive.objectstore.s3 import S3ObjectStore, parse_s3_url
from archive.settings import Settings


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.cloud)])
def store(request, tmp_path):
    if request.param == "filesystem":
        return FilesystemObjectStore(tmp_path / "objects")
    cloud = request.getfixturevalue("cloud_resources")
    return S3ObjectStore(f"s3://{cloud['bucket']}/archive", endpoint_url=cloud["endpoint"])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_bytes_reports_size_and_sha256(store):
    data = b"DICM" + bytes(range(256)) * 10
    stored = store.put_bytes("studies/1.2/a.dcm", data)
    assert (stored.key, stored.size, stored.sha256) == ("studies/1.2/a.dcm", len(data), sha(data))
    assert store.get_bytes("studies/1.2/a.dcm") == data


def test_put_file_reports_size_and_sha256(store, tmp_path):
    data = os.urandom(300_000)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    stored = store.put_file("x/y/in.bin", source)
    assert (stored.size, stored.sha256) == (len(data), sha(data))
    with store.open("x/y/in.bin") as stream:
        assert stream.read() == data
    assert source.read_bytes() == data  # the source is left alone


def test_empty_object(store):
    stored = store.put_bytes("empty", b"")
    assert (stored.size, stored.sha256) == (0, sha(b""))
    assert store.get_bytes("empty") == b""


def test_overwrite_replaces_the_bytes(store):
    store.put_bytes("k", b"first")
    store.put_bytes("k", b"second")
    assert store.get_bytes("k") == b"second"


def test_exists_delete_and_not_found(store):
    assert not store.exists("a/b")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("a/b")
    with pytest.raises(ObjectNotFound):
        store.open("a/b")
    store.put_bytes("a/b", b"1")
    assert store.exists("a/b")
    store.delete("a/b")
    assert not store.exists("a/b")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("a/b")
    store.delete("a/b")  # absent keys are ignored


def test_object_not_found_is_a_key_error():
    assert issubclass(ObjectNotFound, KeyError)


def test_list_by_prefix(store):
    keys = [
        "studies/1.2/series/3/instances/4.dcm",
        "studies/1.2/series/3/instances/5.dcm",
        "studies/1.2/results/j/summary.json",
        "studies/1.20/series/3/instances/6.dcm",
        "other/x",
    ]
    for key in keys:
        store.put_bytes(key, key.encode())
    assert sorted(store.list("studies/1.2/")) == sorted(keys[:3])
    assert sorted(store.list("studies/1.2")) == sorted(keys[:4])  # a plain string prefix
    assert sorted(store.list("studies/1.2/series/")) == sorted(keys[:2])
    assert sorted(store.list("")) == sorted(keys)
    assert list(store.list("nothing/here/")) == []


@pytest.mark.parametrize("key", ["", "/etc/passwd", "a//b", "a/", ".", "a/./b", "..", "../x", "a/../../x", "a/../..", "a\x00b"])
def test_keys_that_are_not_plain_relative_keys_are_refused(store, tmp_path, key):
    # The same keys on every backend: "a//b" would be "a/b" on a filesystem but its own
    # object on S3; "" would make an S3 object named like the prefix folder.
    for call in (
        lambda: store.put_bytes(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.open(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(ValueError, match="bad object key"):
            call()
    assert list(store.list("")) == []
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize("prefix", ["../", "a/../../"])
def test_list_refuses_an_escaping_prefix(store, prefix):
    with pytest.raises(ValueError):
        list(store.list(prefix))


def test_a_folder_or_a_path_through_an_object_is_not_an_object(store):
    store.put_bytes("a/b/c", b"1")
    for key in ("a", "a/b", "a/b/c/d"):
        assert not store.exists(key)
        with pytest.raises(ObjectNotFound):
            store.get_bytes(key)
        with pytest.raises(ObjectNotFound):
            store.open(key)
        store.delete(key)  # nothing there: ignored
    assert store.get_bytes("a/b/c") == b"1"


def test_describe(store):
    text = store.describe()
    assert text.startswith("file://") or text.startswith("s3://")


# -- filesystem only -------------------------------------------------------------------


def test_filesystem_write_leaves_no_temp_files(tmp_path):
    store = FilesystemObjectStore(tmp_path / "objects")
    for n in range(5):
        store.put_bytes(f"d/{n}", b"x" * n)
    source = tmp_path / "src"
    source.write_bytes(b"abc")
    store.put_file("d/file", source)
    names = sorted(p.name for p in (tmp_path / "objects" / "d").iterdir())
    assert names == ["0", "1", "2", "3", "4", "file"]


def test_filesystem_failed_write_leaves_neither_object_nor_temp(tmp_path):
    store = FilesystemObjectStore(tmp_path / "objects")
    store.put_bytes("d/keep", b"old")

    def chunks():
        yield b"partial"
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        write_durably(store.local_path("d/new"), chunks())
    with pytest.raises(FileNotFoundError):
        store.put_file("d/keep", tmp_path / "missing-source")
    assert sorted(p.name for p in (tmp_path / "objects" / "d").iterdir()) == ["keep"]
    assert store.get_bytes("d/keep") == b"old"  # the failed overwrite left the old object whole
    assert list(store.list("d/")) == ["d/keep"]


def test_filesystem_temp_files_are_not_listed(tmp_path):
    store = FilesystemObjectStore(tmp_path / "objects")
    store.put_bytes("d/a", b"1")
    (tmp_path / "objects" / "d" / ".tmp-leftover").write_bytes(b"junk")
    assert list(store.list("d/")) == ["d/a"]


def test_filesystem_write_in_progress_is_invisible(tmp_path):
    """Until the rename, readers see no new object and the whole old one."""
    store = FilesystemObjectStore(tmp_path / "objects")
    store.put_bytes("d/k", b"old")
    seen = []

    def chunks(key):
        yield b"new-"
        seen.append((store.exists(key), sorted(store.list("d/")), store.get_bytes("d/k")))
        yield b"bytes"

    write_durably(store.local_path("d/new"), chunks("d/new"))
    write_durably(store.local_path("d/k"), chunks("d/k"))
    assert seen == [(False, ["d/k"], b"old"), (True, ["d/k", "d/new"], b"old")]
    assert (store.get_bytes("d/new"), store.get_bytes("d/k")) == (b"new-bytes", b"new-bytes")


def test_filesystem_concurrent_reader_sees_only_whole_objects(tmp_path):
    store = FilesystemObjectStore(tmp_path / "objects")
    versions = [bytes([n]) * (1 << 20) for n in range(4)]
    store.put_bytes("hot", versions[0])
    stop = threading.Event()
    reads: list[bytes] = []

    def reader():
        while not stop.is_set():
            reads.append(store.get_bytes("hot"))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(40):
            store.put_bytes("hot", versions[n % 4])
    finally:
        stop.set()
        thread.join(10)
    assert reads and all(data in versions for data in reads)
    assert [p.name for p in (tmp_path / "objects").iterdir()] == ["hot"]


def test_filesystem_refuses_escape_through_a_symlink(tmp_path):
    store = FilesystemObjectStore(tmp_path / "objects")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "objects" / "link").symlink_to(outside)
    with pytest.raises(ValueError):
        store.put_bytes("link/x", b"x")
    assert list(outside.iterdir()) == []


def test_open_object_store_picks_the_backend(tmp_path):
    fs = open_object_store(Settings(data_dir=tmp_path / "data"))
    assert isinstance(fs, FilesystemObjectStore)
    assert fs.root == (tmp_path / "data" / "objects").resolve()
    s3 = open_object_store(Settings(data_dir=tmp_path, object_store="s3://b/p/q", s3_endpoint_url="http://127.0.0.1:1"))
    assert isinstance(s3, S3ObjectStore)
    assert (s3.bucket, s3.prefix) == ("b", "p/q")


@pytest.mark.parametrize("url", ["b/p", "s3:///p", "http://b/p"])
def test_parse_s3_url_refuses_non_s3(url):
    with pytest.raises(ValueError):
        parse_s3_url(url)


# -- S3 only ---------------------------------------------------------------------------


@pytest.mark.cloud
def test_s3_objects_live_under_the_prefix(cloud_resources):
    store = S3ObjectStore(f"s3://{cloud_resources['bucket']}/archive", endpoint_url=cloud_resources["endpoint"])
    store.put_bytes("k/1", b"x")
    listed = cloud_resources["s3"].list_objects_v2(Bucket=cloud_resources["bucket"])
    assert [item["Key"] for item in listed["Contents"]] == ["archive/k/1"]
    assert list(store.list("k/")) == ["k/1"]


@pytest.mark.cloud
def test_s3_put_bytes_carries_sha256_checksum(cloud_resources):
    store = S3ObjectStore(f"s3://{cloud_resources['bucket']}/archive", endpoint_url=cloud_resources["endpoint"])
    data = b"checksummed" * 100
    store.put_bytes("c/1", data)
    head = cloud_resources["s3"].head_object(Bucket=cloud_resources["bucket"], Key="archive/c/1", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert head["Metadata"]["sha256"] == sha(data)


@pytest.mark.cloud
def test_s3_multipart_upload_round_trips(cloud_resources, tmp_path):
    store = S3ObjectStore(
        f"s3://{cloud_resources['bucket']}/archive",
        endpoint_url=cloud_resources["endpoint"],
        multipart_threshold_mb=5,
    )
    data = os.urandom(12 << 20)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    stored = store.put_file("big/one.bin", source)
    assert (stored.size, stored.sha256) == (len(data), sha(data))
    s3, bucket = cloud_resources["s3"], cloud_resources["bucket"]
    head = s3.head_object(Bucket=bucket, Key="archive/big/one.bin", ChecksumMode="ENABLED")
    # A multipart object: its ETag ends in -<parts> (8 MiB parts: 2), and S3 kept a
    # SHA-256 checksum of it (of the parts' checksums, for a multipart upload).
    assert head["ETag"].strip('"').endswith("-2")
    assert head.get("ChecksumSHA256")
    assert head["Metadata"]["sha256"] == sha(data)
    assert head["ContentLength"] == len(data)
    assert store.get_bytes("big/one.bin") == data


@pytest.mark.cloud
def test_s3_small_file_is_a_single_put_with_full_checksum(cloud_resources, tmp_path):
    store = S3ObjectStore(
        f"s3://{cloud_resources['bucket']}/archive", endpoint_url=cloud_resources["endpoint"], multipart_threshold_mb=5
    )
    data = os.urandom(1 << 20)
    source = tmp_path / "small.bin"
    source.write_bytes(data)
    store.put_file("small.bin", source)
    head = cloud_resources["s3"].head_object(
        Bucket=cloud_resources["bucket"], Key="archive/small.bin", ChecksumMode="ENABLED"
    )
    assert "-" not in head["ETag"]
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
