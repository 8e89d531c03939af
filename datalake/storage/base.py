"""The storage contract every lake backend implements, stated once.

Keys are relative '/'-separated names (`bronze/events/date=2024-12-27/part-0.parquet`,
see `datalake.storage.uri`). Every write is atomic: a reader either sees no object under
a key or the whole object, never a partial one. No method ever puts a credential in a
message, a log line or a repr.
"""

import abc
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass

from datalake.storage.uri import InvalidKey, normalize_prefix, validate_key

DEFAULT_STALE_AFTER = dt.timedelta(hours=1)


class StorageError(Exception):
    """A storage operation failed (permission, missing bucket, bad key, full disk...)."""


class StorageUnavailable(StorageError):
    """The store cannot be reached (connection refused, timeouts, retries exhausted)."""


class ObjectNotFound(StorageError):
    """No object exists under the requested key."""

    def __init__(self, key: str, where: str = "") -> None:
        self.key = key
        super().__init__(f"no object under key {key!r}" + (f" in {where}" if where else ""))


class InvalidStorageKey(StorageError, InvalidKey):
    """A key that no backend accepts (absolute, '..', empty segment...)."""


def checked_key(key: str) -> str:
    """Return `key` if valid, else raise InvalidStorageKey."""
    try:
        return validate_key(key)
    except InvalidKey as exc:
        raise InvalidStorageKey(str(exc)) from None


def checked_prefix(prefix: str) -> str:
    """Return the normalized listing prefix, else raise InvalidStorageKey."""
    try:
        return normalize_prefix(prefix)
    except InvalidKey as exc:
        raise InvalidStorageKey(str(exc)) from None


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about one object."""

    key: str
    size: int
    last_modified: dt.datetime | None = None


class Storage(abc.ABC):
    """A place to publish and read lake objects: a local directory or an S3 prefix."""

    @abc.abstractmethod
    def publish_file(self, local_path: str | os.PathLike[str], key: str) -> ObjectInfo:
        """Make the fully written local file visible under `key`, atomically.

        The object appears whole or not at all; an existing object under `key` is
        replaced. The local file is left in place. Raise FileNotFoundError when
        `local_path` is not a file.
        """

    @abc.abstractmethod
    def put_bytes(self, data: bytes, key: str) -> ObjectInfo:
        """Store `data` under `key`, atomically (same guarantee as `publish_file`)."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return the content of the object under `key`; raise ObjectNotFound if none."""

    def read_tail(self, key: str, nbytes: int) -> bytes:
        """Return the last `nbytes` bytes of the object (all of it when shorter), e.g. a
        Parquet footer; raise ObjectNotFound if none. Backends read only the tail."""
        return self.get_bytes(key)[-nbytes:]

    @abc.abstractmethod
    def download_file(self, key: str, local_path: str | os.PathLike[str]) -> ObjectInfo:
        """Copy the object under `key` to `local_path` (parents created, file replaced
        whole); raise ObjectNotFound if there is none."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """Return the object's info, or None when no object exists under `key`."""

    def exists(self, key: str) -> bool:
        """Tell whether an object exists under `key`."""
        return self.stat(key) is not None

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object under the directory-like `prefix`, recursively, by key.

        `prefix` is a key path ("bronze/events"), so "bronze/events" does not match
        "bronze/events_v2/..."; "" lists the whole lake. In-flight temporary files are
        never listed.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object under `key`; deleting a missing object is not an error."""

    def delete_prefix(self, prefix: str) -> tuple[int, int]:
        """Remove every object under the directory-like `prefix`; return (files, bytes).

        Refuse the empty prefix: the whole lake is never one deletion.
        """
        prefix = checked_prefix(prefix)
        if not prefix:
            raise InvalidStorageKey("refusing to delete the whole lake (empty prefix)")
        files = size = 0
        for info in list(self.list(prefix)):
            self.delete(info.key)
            files += 1
            size += info.size
        return files, size

    @abc.abstractmethod
    def cleanup_incomplete(self, older_than: dt.timedelta = DEFAULT_STALE_AFTER) -> int:
        """Remove what interrupted writes left behind and return how many were removed.

        Only leftovers older than `older_than` are touched, so writes still in flight
        in other processes survive.
        """

    @abc.abstractmethod
    def uri(self, key: str = "") -> str:
        """Return the location of `key` (or of the lake root) for engines such as Spark."""

    @abc.abstractmethod
    def check(self) -> None:
        """Verify the store is reachable; raise StorageUnavailable or StorageError if not."""
