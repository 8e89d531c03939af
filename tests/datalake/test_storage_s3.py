"""The S3 backend against a real HTTP S3 endpoint (moto server), a fresh bucket per test."""

import datetime as dt
import hashlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from datalake.storage import (
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    get_storage,
)
from datalake.storage.s3 import MiB, S3Storage
from tests.datalake.test_storage_local import KEY, StorageContract, keys
from tests.fixtures_s3 import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, FAKE_SESSION_TOKEN

pytestmark = pytest.mark.integration

SECRETS = (FAKE_SECRET_ACCESS_KEY, FAKE_SESSION_TOKEN)


class TestS3StorageContract(StorageContract):
    @pytest.fixture
    def storage(self, s3_storage: S3Storage) -> S3Storage:
        return s3_storage


def count_calls(storage: S3Storage, *operations: str) -> Counter[str]:
    """Count the API calls the storage's client makes, per operation name."""
    calls: Counter[str] = Counter()
    for operation in operations:

        def record(operation: str = operation, **_: Any) -> None:
            calls[operation] += 1

        storage.client.meta.events.register(f"before-call.s3.{operation}", record)
    return calls


def pending_uploads(s3_client: Any, bucket: str) -> list[str]:
    return sorted(
        u["Key"] for u in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    )


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections (into its backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- layout -----------------------------------------------------------------------------


def test_objects_live_under_the_prefix(
    s3_storage: S3Storage, s3_client: Any, s3_bucket: str
) -> None:
    s3_storage.put_bytes(b"x", KEY)
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"lake/{KEY}"]


def test_list_ignores_keys_outside_the_prefix_and_folder_markers(
    s3_storage: S3Storage, s3_client: Any, s3_bucket: str
) -> None:
    for key in ("lake/a/b", "lakehouse/x", "other/y", "lake/a/", "lake/z"):
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"1")
    assert keys(s3_storage) == ["a/b", "z"]
    assert keys(s3_storage, "a") == ["a/b"]


def test_storage_without_prefix_uses_the_whole_bucket(
    make_s3_storage: Callable[..., S3Storage], s3_client: Any, s3_bucket: str
) -> None:
    storage = make_s3_storage(prefix="")
    storage.put_bytes(b"x", "bronze/a")
    assert s3_client.get_object(Bucket=s3_bucket, Key="bronze/a")["Body"].read() == b"x"
    assert keys(storage) == ["bronze/a"]
    assert storage.uri("bronze/a") == f"s3a://{s3_bucket}/bronze/a"


def test_uris(s3_storage: S3Storage, s3_bucket: str) -> None:
    assert s3_storage.uri() == f"s3a://{s3_bucket}/lake"
    assert s3_storage.uri(KEY) == f"s3a://{s3_bucket}/lake/{KEY}"
    assert s3_storage.s3_uri(KEY) == f"s3://{s3_bucket}/lake/{KEY}"


# --- multipart --------------------------------------------------------------------------


def test_large_file_goes_multipart_and_arrives_identical(
    make_s3_storage: Callable[..., S3Storage], tmp_path: Path, s3_client: Any, s3_bucket: str
) -> None:
    storage = make_s3_storage(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    calls = count_calls(
        storage, "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"
    )
    data = os.urandom(12 * MiB)
    source = tmp_path / "big.parquet"
    source.write_bytes(data)

    info = storage.publish_file(source, KEY)

    assert calls == {"CreateMultipartUpload": 1, "UploadPart": 3, "CompleteMultipartUpload": 1}
    assert info.size == len(data)
    head = s3_client.head_object(Bucket=s3_bucket, Key=f"lake/{KEY}")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3")
    target = tmp_path / "back.parquet"
    storage.download_file(KEY, target)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert pending_uploads(s3_client, s3_bucket) == []


def test_file_below_threshold_is_a_single_put(
    make_s3_storage: Callable[..., S3Storage], tmp_path: Path
) -> None:
    storage = make_s3_storage(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    calls = count_calls(storage, "PutObject", "CreateMultipartUpload", "UploadPart")
    source = tmp_path / "small"
    source.write_bytes(os.urandom(5 * MiB - 1))
    storage.publish_file(source, KEY)
    assert calls == {"PutObject": 1}
    assert storage.get_bytes(KEY) == source.read_bytes()


def test_multipart_failure_leaves_nothing_and_cleanup_aborts_the_upload(
    make_s3_storage: Callable[..., S3Storage], tmp_path: Path, s3_client: Any, s3_bucket: str
) -> None:
    storage = make_s3_storage(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=1
    )
    storage.put_bytes(b"previous complete version", KEY)
    parts_sent = Counter[str]()

    def drop_connection(**kwargs: Any) -> None:
        # The link dies after the first part: the next part and the abort that
        # s3transfer attempts on failure both fail, as they would in production.
        parts_sent[kwargs["model"].name] += 1
        if kwargs["model"].name == "AbortMultipartUpload" or parts_sent["UploadPart"] > 1:
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=storage.endpoint)

    storage.client.meta.events.register("before-call.s3.UploadPart", drop_connection)
    storage.client.meta.events.register("before-call.s3.AbortMultipartUpload", drop_connection)
    source = tmp_path / "big"
    source.write_bytes(os.urandom(12 * MiB))

    with pytest.raises(StorageUnavailable) as excinfo:
        storage.publish_file(source, KEY)

    assert storage.endpoint in str(excinfo.value)
    assert s3_bucket in str(excinfo.value)
    assert parts_sent["AbortMultipartUpload"] == 1
    assert storage.get_bytes(KEY) == b"previous complete version"
    assert pending_uploads(s3_client, s3_bucket) == [f"lake/{KEY}"]

    storage.client.meta.events.unregister("before-call.s3.AbortMultipartUpload", drop_connection)
    # Recent enough to be someone's upload in flight: kept.
    assert storage.cleanup_incomplete(older_than=dt.timedelta(days=365 * 50)) == 0
    assert pending_uploads(s3_client, s3_bucket) == [f"lake/{KEY}"]
    assert storage.cleanup_incomplete(older_than=dt.timedelta(0)) == 1
    assert pending_uploads(s3_client, s3_bucket) == []
    assert storage.get_bytes(KEY) == b"previous complete version"


def test_cleanup_aborts_only_uploads_under_the_prefix(
    s3_storage: S3Storage, s3_client: Any, s3_bucket: str
) -> None:
    for key in ("lake/bronze/crashed.parquet", "lakehouse/theirs", "other/theirs"):
        upload = s3_client.create_multipart_upload(Bucket=s3_bucket, Key=key)
        s3_client.upload_part(
            Bucket=s3_bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 100
        )
    assert s3_storage.cleanup_incomplete(older_than=dt.timedelta(0)) == 1
    assert pending_uploads(s3_client, s3_bucket) == ["lakehouse/theirs", "other/theirs"]
    assert keys(s3_storage) == []


# --- listing ----------------------------------------------------------------------------


def test_list_paginates_past_1000_keys(
    s3_storage: S3Storage, s3_client: Any, s3_bucket: str
) -> None:
    expected = [f"bronze/events/date=2024-12-27/part-{i:05d}.parquet" for i in range(1003)]

    def put(key: str) -> None:
        s3_client.put_object(Bucket=s3_bucket, Key=f"lake/{key}", Body=b"x")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, expected))
    calls = count_calls(s3_storage, "ListObjectsV2")

    assert keys(s3_storage, "bronze/events") == expected
    assert calls == {"ListObjectsV2": 2}


def test_list_page_size_is_configurable(make_s3_storage: Callable[..., S3Storage]) -> None:
    storage = make_s3_storage(page_size=10)
    expected = [f"k/{i:02d}" for i in range(25)]
    for key in reversed(expected):
        storage.put_bytes(key.encode(), key)
    calls = count_calls(storage, "ListObjectsV2")

    listed = list(storage.list())

    assert [i.key for i in listed] == expected
    assert [i.size for i in listed] == [4] * 25
    assert calls == {"ListObjectsV2": 3}


# --- failures ---------------------------------------------------------------------------


def test_missing_bucket_is_a_clear_error(make_s3_storage: Callable[..., S3Storage]) -> None:
    storage = make_s3_storage(bucket="no-such-bucket-here")
    for call in (
        lambda: storage.check(),
        lambda: storage.put_bytes(b"x", KEY),
        lambda: list(storage.list()),
    ):
        with pytest.raises(StorageError, match="bucket 'no-such-bucket-here' does not exist at"):
            call()


def test_check_passes_on_an_existing_bucket(s3_storage: S3Storage) -> None:
    s3_storage.check()


def test_get_missing_key_names_the_location(s3_storage: S3Storage, s3_bucket: str) -> None:
    with pytest.raises(ObjectNotFound, match=f"'missing/key' in s3://{s3_bucket}/lake"):
        s3_storage.get_bytes("missing/key")


def test_endpoint_down_is_unavailable_quickly_and_retried(
    make_s3_storage: Callable[..., S3Storage], closed_port: int, s3_bucket: str
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    storage = make_s3_storage(endpoint_url=endpoint, max_attempts=3)
    attempts = Counter[str]()
    storage.client.meta.events.register(
        "before-send.s3.GetObject", lambda **_: attempts.update(["send"])
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as excinfo:
        storage.get_bytes(KEY)
    elapsed = time.monotonic() - started

    assert attempts["send"] == 3  # the retry configuration is in force
    assert elapsed < 10
    message = str(excinfo.value)
    assert endpoint in message
    assert repr(s3_bucket) in message
    assert_no_secret(message)
    assert FAKE_ACCESS_KEY_ID not in message


@pytest.mark.parametrize("operation", ["put", "publish", "list", "stat", "delete", "cleanup"])
def test_every_operation_reports_an_unreachable_endpoint(
    make_s3_storage: Callable[..., S3Storage], closed_port: int, tmp_path: Path, operation: str
) -> None:
    storage = make_s3_storage(endpoint_url=f"http://127.0.0.1:{closed_port}", max_attempts=1)
    source = tmp_path / "f"
    source.write_bytes(b"x")
    calls = {
        "put": lambda: storage.put_bytes(b"x", KEY),
        "publish": lambda: storage.publish_file(source, KEY),
        "list": lambda: list(storage.list()),
        "stat": lambda: storage.stat(KEY),
        "delete": lambda: storage.delete(KEY),
        "cleanup": lambda: storage.cleanup_incomplete(),
    }
    with pytest.raises(StorageUnavailable, match=f"127.0.0.1:{closed_port}"):
        calls[operation]()


def test_server_stopping_mid_session_is_unavailable(
    aws_credentials: dict[str, str], tmp_path: Path
) -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        storage = S3Storage(
            "short-lived",
            endpoint_url=f"http://{host}:{port}",
            addressing_style="path",
            max_attempts=2,
        )
        storage.client.create_bucket(Bucket="short-lived")
        storage.put_bytes(b"x", KEY)
        assert storage.get_bytes(KEY) == b"x"
    finally:
        server.stop()
    with pytest.raises(StorageUnavailable, match=f"{host}:{port}.*'short-lived'"):
        storage.get_bytes(KEY)


def test_read_timeout_is_unavailable(
    make_s3_storage: Callable[..., S3Storage], silent_endpoint: str
) -> None:
    storage = make_s3_storage(endpoint_url=silent_endpoint, read_timeout=0.3, max_attempts=1)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="ReadTimeoutError"):
        storage.stat(KEY)
    assert time.monotonic() - started < 5


# --- secrets ----------------------------------------------------------------------------


def test_no_credentials_in_repr_messages_or_logs(
    make_s3_storage: Callable[..., S3Storage],
    closed_port: int,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, botocore's included
    storage = make_s3_storage()
    assert "S3Storage(bucket=" in repr(storage)
    storage.put_bytes(b"x", KEY)
    source = tmp_path / "f"
    source.write_bytes(b"y")
    storage.publish_file(source, KEY)
    storage.delete(KEY)
    with pytest.raises(ObjectNotFound) as not_found:
        storage.get_bytes(KEY)
    down = make_s3_storage(endpoint_url=f"http://127.0.0.1:{closed_port}", max_attempts=1)
    with pytest.raises(StorageUnavailable) as unavailable:
        down.get_bytes(KEY)

    for text in (repr(storage), repr(down), str(not_found.value), str(unavailable.value)):
        assert_no_secret(text)
        assert FAKE_ACCESS_KEY_ID not in text
    # botocore logged the signed requests at DEBUG, with the credentials masked.
    assert "x-amz-security-token:***" in caplog.text
    assert_no_secret(caplog.text)
    assert FAKE_ACCESS_KEY_ID not in caplog.text


def test_endpoint_with_embedded_credentials_is_refused_without_echo(s3_bucket: str) -> None:
    with pytest.raises(StorageError) as excinfo:
        S3Storage(s3_bucket, endpoint_url=f"http://AKIAXYZ:{FAKE_SECRET_ACCESS_KEY}@127.0.0.1:9000")
    assert_no_secret(str(excinfo.value))
    assert "AKIAXYZ" not in str(excinfo.value)


# --- configuration ----------------------------------------------------------------------


def test_get_storage_builds_s3_from_settings(
    settings: Any, s3_endpoint: str, s3_bucket: str
) -> None:
    settings.DATALAKE_URI = f"s3://{s3_bucket}/prod/lake/"
    settings.DATALAKE_S3_ENDPOINT_URL = s3_endpoint
    settings.DATALAKE_S3_REGION = "eu-central-1"
    settings.DATALAKE_S3_ADDRESSING_STYLE = "path"

    storage = get_storage()

    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == (s3_bucket, "prod/lake")
    assert storage.endpoint == s3_endpoint
    assert storage.client.meta.region_name == "eu-central-1"
    assert storage.client.meta.config.s3 == {"addressing_style": "path"}
    assert storage.client.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    storage.put_bytes(b"hello", "a/b")
    assert storage.get_bytes("a/b") == b"hello"
    assert storage.uri("a/b") == f"s3a://{s3_bucket}/prod/lake/a/b"


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("DATALAKE_S3_ADDRESSING_STYLE", "dns", "must be one of auto, path, virtual"),
        ("DATALAKE_S3_ENDPOINT_URL", "minio:9000", "must be an http"),
    ],
)
def test_get_storage_rejects_bad_s3_settings(
    settings: Any, setting: str, value: str, message: str
) -> None:
    settings.DATALAKE_URI = "s3://some-bucket/x"
    setattr(settings, setting, value)
    with pytest.raises(StorageError, match=message):
        get_storage()
