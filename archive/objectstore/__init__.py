"""Object storage: one interface (:class:`ObjectStore`), a filesystem and an S3 backend."""

from __future__ import annotations

from archive.objectstore.base import ObjectNotFound, ObjectStore, StoredObject
from archive.objectstore.filesystem import FilesystemObjectStore


def open_object_store(settings) -> ObjectStore:
    """The backend that ``settings.object_store`` names: a directory or ``s3://bucket/prefix``."""
    location = settings.resolved_object_store
    if location.startswith("s3://"):
        from archive.objectstore.s3 import S3ObjectStore

        return S3ObjectStore(
            location,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.aws_region,
            multipart_threshold_mb=settings.s3_multipart_threshold_mb,
        )
    return FilesystemObjectStore(location)


__all__ = ["FilesystemObjectStore", "ObjectNotFound", "ObjectStore", "StoredObject", "open_object_store"]
