"""The lake's object store: pick a backend from DATALAKE_URI and use the `Storage` contract.

storage = get_storage()
storage.publish_file(local_parquet, "bronze/events/date=2024-12-27/part-0.parquet")
"""

import functools
import os
from pathlib import Path

from datalake.storage.base import (
    InvalidStorageKey,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    StorageUnavailable,
)
from datalake.storage.uri import InvalidURI, parse_lake_uri

__all__ = [
    "InvalidStorageKey",
    "ObjectInfo",
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "get_storage",
]


def get_storage(uri: str | None = None) -> Storage:
    """Return the backend for `uri`, or for DATALAKE_URI when none is given.

    A path (relative ones are taken from the project root) gives a LocalStorage;
    `s3://bucket/prefix` gives an S3Storage using DATALAKE_S3_ENDPOINT_URL,
    DATALAKE_S3_REGION and DATALAKE_S3_ADDRESSING_STYLE. Raise StorageError for a URI
    that names no usable location.
    """
    # Imported here so that `datalake.storage.uri` stays importable without Django.
    from django.conf import settings

    from datalake.conf import app_settings

    uri = app_settings.URI if uri is None else uri
    try:
        location = parse_lake_uri(uri)
    except InvalidURI as exc:
        raise StorageError(f"invalid lake URI: {exc}") from None
    if not location.is_s3:
        root = Path(location.path).expanduser()
        if not root.is_absolute():
            root = Path(settings.BASE_DIR) / root
        return _local(str(root))
    return _s3(
        location.bucket,
        location.prefix,
        app_settings.S3_ENDPOINT_URL or None,
        app_settings.S3_REGION or None,
        app_settings.S3_ADDRESSING_STYLE or "auto",
        os.getpid(),
    )


@functools.lru_cache(maxsize=16)
def _local(root: str) -> Storage:
    from datalake.storage.local import LocalStorage

    return LocalStorage(root)


# Building a boto3 client costs tens of milliseconds, so clients are shared; the pid is
# part of the cache key because a client's connections must not cross a fork (Celery).
@functools.lru_cache(maxsize=16)
def _s3(
    bucket: str,
    prefix: str,
    endpoint_url: str | None,
    region: str | None,
    addressing_style: str,
    pid: int,
) -> Storage:
    from datalake.storage.s3 import S3Storage

    return S3Storage(
        bucket,
        prefix,
        endpoint_url=endpoint_url,
        region=region,
        addressing_style=addressing_style,
    )
