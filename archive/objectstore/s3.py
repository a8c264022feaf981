"""Object store on S3 through boto3.

* ``endpoint_url`` makes it work against MinIO or moto's server as well as AWS.
* Every put sends a SHA-256 checksum, which S3 verifies before it acknowledges.
* Objects above the multipart threshold are uploaded in parts by boto3's transfer
  manager, each part checksummed.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import BinaryIO, Iterator
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from archive.objectstore.base import ObjectNotFound, StoredObject, check_key, sha256_file



def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → (bucket, prefix without surrounding slashes)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
    return parsed.netloc, parsed.path.strip("/")


class S3ObjectStore:
    """Objects in ``bucket`` under ``prefix``."""

    def __init__(
        self,
        url: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        multipart_threshold_mb: int = 16,
        client=None,
    ) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32),
        )
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold_mb << 20,
            multipart_chunksize=max(8, multipart_threshold_mb) << 20,
        )

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, path: Path, sha256: str | None = None) -> StoredObject:
        path = Path(path)
        size = path.stat().st_size
        digest = sha256 or sha256_file(path)
        self.client.upload_file(
            str(path),
            self.bucket,
            self._key(key),
            ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": digest}},
            Config=self.transfer,
        )
        return StoredObject(key, size, digest)

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        raw = hashlib.sha256(data).digest()
        self.client.put_object(
            Bucket=self.bucket,
            Key=self._key(key),
            Body=data,
            # Name the algorithm as well as the value: with the value alone, S3-compatible
            # stores (moto, at least) keep no checksum, and GetObject cannot verify it later.
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(raw).decode(),
            Metadata={"sha256": raw.hex()},
        )
        return StoredObject(key, len(data), raw.hex())

    def _get(self, key: str):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise ObjectNotFound(key) from None
            raise

    def get_bytes(self, key: str) -> bytes:
        return self._get(key)["Body"].read()

    def open(self, key: str) -> BinaryIO:
        return self._get(key)["Body"]

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
                return False
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str) -> Iterator[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        # A prefix may be empty or end in "/", so it is not checked as a key; ".." in it
        # would only match nothing, but refuse it as the filesystem does.
        if ".." in prefix.split("/"):
            raise ValueError(f"bad prefix {prefix!r}: it escapes the object store")
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for item in page.get("Contents", []):
                yield item["Key"][strip:]

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"
