"""The lake in a local directory (the default; also what Spark reads in local mode)."""

import datetime as dt
import logging
import os
import shutil
import stat as stat_module
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from datalake import faults
from datalake.storage.base import (
    DEFAULT_STALE_AFTER,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    checked_key,
    checked_prefix,
)
from datalake.storage.uri import TEMP_PREFIX

logger = logging.getLogger(__name__)

COPY_BUFFER = 1024 * 1024


def _copy_stream(src: BinaryIO, dst: BinaryIO) -> None:
    """Copy `src` into `dst` (a seam for tests that crash a copy half-way)."""
    shutil.copyfileobj(src, dst, COPY_BUFFER)
    dst.flush()
    faults.crash_point("mid_file")


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry itself reaches the disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(final: Path) -> Path:
    # The final name is kept (shortened) so an operator can tell what a leftover was.
    return final.with_name(f"{TEMP_PREFIX}{final.name[:120]}.{uuid.uuid4().hex[:16]}")


def _write_atomically(final: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through `write` into a hidden temp name, fsync it, rename it to `final`.

    Readers (Spark, pyarrow, `LocalStorage.list`) ignore names starting with '.', so a
    crash at any point leaves either nothing or a temp file that `cleanup_incomplete`
    removes later; never a partial file under `final`.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_name(final)
    try:
        with open(temp, "xb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=st.st_size,
        last_modified=dt.datetime.fromtimestamp(st.st_mtime, tz=dt.UTC),
    )


class LocalStorage(Storage):
    """Objects are files under `root`; a key's segments are its directories."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(root))

    def __repr__(self) -> str:
        return f"LocalStorage(root={str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*checked_key(key).split("/"))

    @contextmanager
    def _os_errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(key, str(self.root)) from None
        except OSError as exc:
            raise StorageError(f"cannot {action} {key!r} under {self.root}: {exc}") from exc

    def publish_file(self, local_path: str | os.PathLike[str], key: str) -> ObjectInfo:
        final = self._path(key)
        if not os.path.isfile(local_path):
            raise FileNotFoundError(f"cannot publish {os.fspath(local_path)!r}: not a file")
        try:
            with open(local_path, "rb") as src:
                _write_atomically(final, lambda out: _copy_stream(src, out))
        except OSError as exc:
            raise StorageError(f"cannot publish {key!r} under {self.root}: {exc}") from exc
        info = _info(key, final.stat())
        logger.debug("published %s (%d bytes) to %s", key, info.size, self.root)
        return info

    def put_bytes(self, data: bytes, key: str) -> ObjectInfo:
        final = self._path(key)
        try:
            _write_atomically(final, lambda out: out.write(data))
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} under {self.root}: {exc}") from exc
        return _info(key, final.stat())

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        with self._os_errors("read", key):
            return path.read_bytes()

    def read_tail(self, key: str, nbytes: int) -> bytes:
        path = self._path(key)
        with self._os_errors("read", key), open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - nbytes))
            return f.read()

    def download_file(self, key: str, local_path: str | os.PathLike[str]) -> ObjectInfo:
        path = self._path(key)
        with self._os_errors("read", key):
            src = open(path, "rb")  # noqa: SIM115 - closed below, errors mapped above
        with src:
            try:
                _write_atomically(Path(local_path), lambda out: _copy_stream(src, out))
            except OSError as exc:
                raise StorageError(f"cannot download {key!r} to {local_path}: {exc}") from exc
            return _info(key, os.fstat(src.fileno()))

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat {key!r} under {self.root}: {exc}") from exc
        return _info(key, st) if stat_module.S_ISREG(st.st_mode) else None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        prefix = checked_prefix(prefix)
        top = self.root.joinpath(*prefix.split("/")) if prefix else self.root
        if not top.is_dir():
            return
        yield from self._walk(top, prefix)

    def _walk(self, directory: Path, key_prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:  # removed while we were listing
            return
        # Sorting a directory's entries by name, with '/' appended to subdirectories,
        # yields the full keys in plain string order while walking lazily.
        dirs = {e.name for e in entries if e.is_dir()}
        for entry in sorted(entries, key=lambda e: e.name + "/" if e.name in dirs else e.name):
            if entry.name.startswith(TEMP_PREFIX):
                continue
            key = f"{key_prefix}/{entry.name}" if key_prefix else entry.name
            if entry.name in dirs:
                yield from self._walk(Path(entry.path), key)
            elif entry.is_file():
                try:
                    yield _info(key, entry.stat())
                except FileNotFoundError:
                    continue

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r} under {self.root}: {exc}") from exc
        logger.debug("deleted %s from %s", key, self.root)

    def delete_prefix(self, prefix: str) -> tuple[int, int]:
        prefix = checked_prefix(prefix)
        if not prefix:
            return super().delete_prefix(prefix)  # refuses
        top = self.root.joinpath(*prefix.split("/"))
        if not top.is_dir():
            return 0, 0
        files = size = 0
        for dirpath, _dirnames, filenames in os.walk(top):
            for name in filenames:
                try:
                    size += os.stat(os.path.join(dirpath, name)).st_size
                    files += 1
                except FileNotFoundError:
                    continue
        try:
            shutil.rmtree(top)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete {prefix!r} under {self.root}: {exc}") from exc
        # Empty parents would still show as partitions to a directory-listing reader.
        parent = top.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
        logger.info("deleted %s (%d files, %d bytes) from %s", prefix, files, size, self.root)
        return files, size

    def cleanup_incomplete(self, older_than: dt.timedelta = DEFAULT_STALE_AFTER) -> int:
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if not name.startswith(TEMP_PREFIX):
                    continue
                path = Path(dirpath, name)
                try:
                    if path.stat().st_mtime <= cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:  # finished or cleaned by someone else
                    continue
        if removed:
            logger.info("removed %d incomplete file(s) under %s", removed, self.root)
        return removed

    def uri(self, key: str = "") -> str:
        return str(self._path(key)) if key else str(self.root)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the lake directory {self.root}: {exc}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"the lake directory {self.root} is not writable")
