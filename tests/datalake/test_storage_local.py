"""The storage contract, and the local backend's atomic publication.

`StorageContract` holds one body per behaviour; `TestLocalStorageContract` runs it on a
directory and `tests/datalake/test_storage_s3.py` runs the same bodies on S3.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from datalake.storage import (
    InvalidStorageKey,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    get_storage,
)
from datalake.storage import local as local_module
from datalake.storage.local import LocalStorage
from datalake.storage.uri import TEMP_PREFIX

ROOT = Path(__file__).resolve().parents[2]
KEY = "bronze/events/date=2024-12-27/part-00000001-0.parquet"
BAD_KEYS = ["", "/abs", "a//b", "../escape", "a/../../b", "a/", ".tmp-x"]


def keys(storage: Storage, prefix: str = "") -> list[str]:
    return [info.key for info in storage.list(prefix)]


class StorageContract:
    """What every backend must do; subclasses provide a `storage` fixture."""

    def test_put_bytes_then_get_bytes(self, storage: Storage) -> None:
        data = bytes(range(256)) * 10
        info = storage.put_bytes(data, KEY)
        assert (info.key, info.size) == (KEY, len(data))
        assert storage.get_bytes(KEY) == data

    def test_empty_object(self, storage: Storage) -> None:
        storage.put_bytes(b"", "a/empty")
        assert storage.get_bytes("a/empty") == b""
        assert storage.stat("a/empty").size == 0

    def test_publish_file_round_trip_leaves_source(self, storage: Storage, tmp_path: Path) -> None:
        source = tmp_path / "part.parquet"
        data = os.urandom(300_000)
        source.write_bytes(data)
        info = storage.publish_file(source, KEY)
        assert (info.key, info.size) == (KEY, len(data))
        assert storage.get_bytes(KEY) == data
        assert source.read_bytes() == data

    def test_publish_replaces_existing_object(self, storage: Storage, tmp_path: Path) -> None:
        storage.put_bytes(b"old version", KEY)
        source = tmp_path / "new"
        source.write_bytes(b"new")
        storage.publish_file(source, KEY)
        assert storage.get_bytes(KEY) == b"new"
        assert storage.stat(KEY).size == 3

    def test_publish_missing_source(self, storage: Storage, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            storage.publish_file(tmp_path / "nope", KEY)
        assert not storage.exists(KEY)

    def test_stat_and_exists(self, storage: Storage) -> None:
        assert storage.stat(KEY) is None
        assert not storage.exists(KEY)
        storage.put_bytes(b"12345", KEY)
        info = storage.stat(KEY)
        assert (info.key, info.size) == (KEY, 5)
        assert info.last_modified is not None
        assert abs(info.last_modified - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
        assert storage.exists(KEY)
        # A "directory" is not an object.
        assert storage.stat("bronze/events") is None
        assert not storage.exists("bronze/events")

    def test_get_missing_raises_object_not_found(self, storage: Storage) -> None:
        storage.put_bytes(b"x", "bronze/events/a")
        for missing in ("bronze/events/b", "bronze/events", "nothing/here"):
            with pytest.raises(ObjectNotFound) as excinfo:
                storage.get_bytes(missing)
            assert excinfo.value.key == missing
            assert isinstance(excinfo.value, StorageError)

    def test_download_file(self, storage: Storage, tmp_path: Path) -> None:
        data = os.urandom(70_000)
        storage.put_bytes(data, KEY)
        target = tmp_path / "down" / "loaded" / "file.parquet"
        info = storage.download_file(KEY, target)
        assert target.read_bytes() == data
        assert info.size == len(data)
        assert [p.name for p in target.parent.iterdir()] == ["file.parquet"]

    def test_download_missing_creates_nothing(self, storage: Storage, tmp_path: Path) -> None:
        target = tmp_path / "file"
        with pytest.raises(ObjectNotFound):
            storage.download_file("no/such/key", target)
        assert not target.exists()

    def test_list_is_recursive_sorted_and_relative(self, storage: Storage) -> None:
        # Names chosen so that walking directories in name order would give the wrong
        # order: '-' < '/' < '0' < '_' in string order.
        written = [
            "bronze/events/date=2024-12-27/part-1.parquet",
            "bronze/events/date=2024-12-27/_metadata/manifest.json",
            "bronze/events/date=2024-12-26/part-0.parquet",
            "bronze/events-old/x",
            "bronze/events0",
            "bronze/events_v2/date=2024-12-27/part-0.parquet",
            "silver/stop_executions/client_id=1/date=2024-12-27/p.parquet",
            "a",
        ]
        for i, key in enumerate(written):
            storage.put_bytes(b"x" * i, key)
        listed = list(storage.list())
        assert [i.key for i in listed] == sorted(written)
        assert {i.key: i.size for i in listed} == {k: i for i, k in enumerate(written)}
        assert all(isinstance(i, ObjectInfo) for i in listed)

    def test_list_prefix_is_a_directory(self, storage: Storage) -> None:
        for key in ("bronze/events/a", "bronze/events/sub/b", "bronze/events_v2/c", "bronze/e"):
            storage.put_bytes(b"x", key)
        assert keys(storage, "bronze/events") == ["bronze/events/a", "bronze/events/sub/b"]
        assert keys(storage, "bronze/events/") == ["bronze/events/a", "bronze/events/sub/b"]
        assert keys(storage, "bronze/events/sub") == ["bronze/events/sub/b"]
        assert keys(storage, "bronze/events/a") == []
        assert keys(storage, "gold") == []

    def test_list_empty_store(self, storage: Storage) -> None:
        assert keys(storage) == []

    def test_delete(self, storage: Storage) -> None:
        storage.put_bytes(b"x", KEY)
        storage.put_bytes(b"y", "bronze/events/other")
        storage.delete(KEY)
        assert not storage.exists(KEY)
        assert keys(storage) == ["bronze/events/other"]
        storage.delete(KEY)  # already gone: not an error
        storage.delete("never/existed")
        with pytest.raises(ObjectNotFound):
            storage.get_bytes(KEY)

    def test_read_tail(self, storage: Storage) -> None:
        storage.put_bytes(b"0123456789", KEY)
        assert storage.read_tail(KEY, 4) == b"6789"
        assert storage.read_tail(KEY, 100) == b"0123456789"
        storage.put_bytes(b"", "empty")
        assert storage.read_tail("empty", 8) == b""
        with pytest.raises(ObjectNotFound):
            storage.read_tail("missing", 8)

    def test_delete_prefix_removes_exactly_the_directory(self, storage: Storage) -> None:
        doomed = ["bronze/events/date=2024-01-01/a.parquet",
                  "bronze/events/date=2024-01-01/_metadata/a.json"]  # fmt: skip
        kept = ["bronze/events/date=2024-01-010/b.parquet",
                "bronze/events/date=2024-01-02/c.parquet"]  # fmt: skip
        for i, key in enumerate(doomed + kept):
            storage.put_bytes(b"x" * (i + 1), key)
        assert storage.delete_prefix("bronze/events/date=2024-01-01") == (2, 3)
        assert keys(storage) == kept
        assert storage.delete_prefix("bronze/events/date=2024-01-01") == (0, 0)

    def test_delete_prefix_refuses_the_whole_lake(self, storage: Storage) -> None:
        storage.put_bytes(b"x", KEY)
        with pytest.raises(InvalidStorageKey):
            storage.delete_prefix("")
        assert keys(storage) == [KEY]

    @pytest.mark.parametrize("bad", BAD_KEYS)
    def test_bad_keys_are_refused(self, storage: Storage, tmp_path: Path, bad: str) -> None:
        source = tmp_path / "f"
        source.write_bytes(b"x")
        calls = [
            lambda: storage.put_bytes(b"x", bad),
            lambda: storage.publish_file(source, bad),
            lambda: storage.get_bytes(bad),
            lambda: storage.stat(bad),
            lambda: storage.delete(bad),
            lambda: storage.download_file(bad, tmp_path / "out"),
        ]
        for call in calls:
            with pytest.raises(InvalidStorageKey):
                call()
        assert keys(storage) == []

    def test_bad_prefix_is_refused(self, storage: Storage) -> None:
        with pytest.raises(InvalidStorageKey):
            list(storage.list("../outside"))

    def test_cleanup_on_a_clean_store_removes_nothing(self, storage: Storage) -> None:
        storage.put_bytes(b"x", KEY)
        assert storage.cleanup_incomplete(older_than=dt.timedelta(0)) == 0
        assert keys(storage) == [KEY]

    def test_uri_of_root_and_key(self, storage: Storage) -> None:
        root = storage.uri()
        assert storage.uri(KEY) == f"{root}/{KEY}"

    def test_check_passes(self, storage: Storage) -> None:
        storage.check()


class TestLocalStorageContract(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> LocalStorage:
        return LocalStorage(tmp_path / "lake")


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "lake")


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX))


def test_uri_is_an_absolute_path_engines_can_read(storage: LocalStorage) -> None:
    storage.put_bytes(b"data", KEY)
    assert Path(storage.uri(KEY)).is_absolute()
    assert Path(storage.uri(KEY)).read_bytes() == b"data"
    assert storage.uri() == str(storage.root)


def test_publish_writes_a_hidden_temp_then_renames(
    storage: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("replace", f"{src} -> {dst}"))
        real_replace(src, dst)

    monkeypatch.setattr(local_module.os, "fsync", fsync)
    monkeypatch.setattr(local_module.os, "replace", replace)
    source = tmp_path / "src"
    source.write_bytes(b"payload")
    storage.publish_file(source, KEY)

    final = storage.root / KEY
    assert [kind for kind, _ in events] == ["fsync", "replace", "fsync"]
    temp = Path(events[0][1])
    assert temp.parent == final.parent  # same directory, so the rename is atomic
    assert temp.name.startswith(TEMP_PREFIX + final.name)
    assert events[1][1] == f"{temp} -> {final}"
    assert events[2][1] == str(final.parent)  # the directory entry is made durable
    assert final.read_bytes() == b"payload"
    assert temp_files(storage.root) == []


def test_publish_failing_mid_copy_leaves_nothing(
    storage: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.put_bytes(b"previous complete version", KEY)

    def failing_copy(src, dst) -> None:  # type: ignore[no-untyped-def]
        dst.write(src.read(1000))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local_module, "_copy_stream", failing_copy)
    source = tmp_path / "big"
    source.write_bytes(os.urandom(5000))
    with pytest.raises(StorageError, match="No space left on device"):
        storage.publish_file(source, KEY)
    with pytest.raises(StorageError):
        storage.publish_file(source, "bronze/events/date=2024-12-28/new.parquet")

    assert storage.get_bytes(KEY) == b"previous complete version"
    assert not storage.exists("bronze/events/date=2024-12-28/new.parquet")
    assert temp_files(storage.root) == []


CRASHING_PUBLISHER = """
import sys
from datalake.storage import local

def copy_then_hang(src, dst):
    dst.write(src.read(4096))
    dst.flush()
    print("half-written", flush=True)
    sys.stdin.read()  # wait here until killed

local._copy_stream = copy_then_hang
local.LocalStorage(sys.argv[1]).publish_file(sys.argv[2], sys.argv[3])
print("published", flush=True)
"""


def test_publish_killed_mid_copy_leaves_only_a_hidden_temp_that_cleanup_removes(
    storage: LocalStorage, tmp_path: Path
) -> None:
    source = tmp_path / "big"
    source.write_bytes(os.urandom(100_000))
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_PUBLISHER, str(storage.root), str(source), KEY],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line == "half-written\n", line or proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    assert not storage.exists(KEY)
    assert keys(storage) == []
    [temp] = temp_files(storage.root)
    assert temp.parent == (storage.root / KEY).parent
    assert temp.stat().st_size == 4096

    # A temp this fresh may belong to a publish still in flight elsewhere: kept.
    assert storage.cleanup_incomplete() == 0
    assert temp.exists()
    two_hours_ago = (dt.datetime.now() - dt.timedelta(hours=2)).timestamp()
    os.utime(temp, (two_hours_ago, two_hours_ago))
    assert storage.cleanup_incomplete() == 1
    assert temp_files(storage.root) == []
    assert keys(storage) == []


def test_cleanup_leaves_ordinary_hidden_files_alone(storage: LocalStorage) -> None:
    storage.put_bytes(b"x", "bronze/events/_metadata/manifest.json")
    other = storage.root / "bronze" / ".keep"
    other.write_bytes(b"")
    temp = storage.root / "bronze" / f"{TEMP_PREFIX}leftover"
    temp.write_bytes(b"partial")
    assert storage.cleanup_incomplete(older_than=dt.timedelta(0)) == 1
    assert other.exists()
    assert not temp.exists()
    assert keys(storage) == ["bronze/.keep", "bronze/events/_metadata/manifest.json"]


def test_list_skips_in_flight_temp_files(storage: LocalStorage) -> None:
    storage.put_bytes(b"x", KEY)
    (storage.root / KEY).with_name(f"{TEMP_PREFIX}part-2.parquet.abc").write_bytes(b"partial")
    assert keys(storage) == [KEY]


def test_download_failing_mid_copy_keeps_previous_local_file(
    storage: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.put_bytes(os.urandom(10_000), KEY)
    target = tmp_path / "local.parquet"
    target.write_bytes(b"previous")

    def failing_copy(src, dst) -> None:  # type: ignore[no-untyped-def]
        dst.write(src.read(100))
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(local_module, "_copy_stream", failing_copy)
    with pytest.raises(StorageError, match="Input/output error"):
        storage.download_file(KEY, target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)] == []


def test_check_creates_the_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "new" / "lake")
    storage.check()
    assert (tmp_path / "new" / "lake").is_dir()


def test_check_fails_when_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "lake").write_bytes(b"")
    with pytest.raises(StorageError, match="cannot create the lake directory"):
        LocalStorage(tmp_path / "lake").check()


def test_get_storage_uses_datalake_uri(settings: Any, tmp_path: Path) -> None:
    settings.DATALAKE_URI = str(tmp_path / "configured")
    storage = get_storage()
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "configured"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("var/lake-test", "var/lake-test"),
        ("./x/../lake", "lake"),
    ],
)
def test_get_storage_resolves_relative_paths_against_the_project(
    settings: Any, uri: str, expected: str
) -> None:
    settings.BASE_DIR = Path("/srv/robson")
    storage = get_storage(uri)
    assert isinstance(storage, LocalStorage)
    assert storage.root == Path("/srv/robson") / expected


def test_get_storage_accepts_file_uris(tmp_path: Path) -> None:
    storage = get_storage(f"file://{tmp_path}/lake")
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "lake"


@pytest.mark.parametrize("uri", ["", "gs://bucket/x", "s3://", "s3://Bad_Bucket/x"])
def test_get_storage_rejects_bad_uris(uri: str) -> None:
    with pytest.raises(StorageError, match="invalid lake URI"):
        get_storage(uri)
