"""Lake URIs, keys and partition paths: pure functions, no Django, no S3."""

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from datalake.storage.uri import (
    InvalidKey,
    InvalidURI,
    LakeURI,
    escape_partition_value,
    is_under,
    join_key,
    normalize_prefix,
    parse_lake_uri,
    parse_partition_path,
    partition_path,
    s3_object_uri,
    unescape_partition_value,
    validate_key,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("var/lake", LakeURI("file", path="var/lake")),
        ("/srv/lake", LakeURI("file", path="/srv/lake")),
        ("  /srv/lake  ", LakeURI("file", path="/srv/lake")),
        ("./lake", LakeURI("file", path="./lake")),
        ("~/lake", LakeURI("file", path="~/lake")),
        ("file:///srv/lake", LakeURI("file", path="/srv/lake")),
        ("file://localhost/srv/lake", LakeURI("file", path="/srv/lake")),
        ("s3://robson-datalake", LakeURI("s3", bucket="robson-datalake")),
        ("s3://robson-datalake/", LakeURI("s3", bucket="robson-datalake")),
        ("s3://robson-datalake/prod", LakeURI("s3", bucket="robson-datalake", prefix="prod")),
        ("s3://robson-datalake/prod/", LakeURI("s3", bucket="robson-datalake", prefix="prod")),
        ("s3://b.example.com/a/b/c", LakeURI("s3", bucket="b.example.com", prefix="a/b/c")),
        ("s3a://robson-datalake/x", LakeURI("s3", bucket="robson-datalake", prefix="x")),
        ("S3://robson-datalake/x", LakeURI("s3", bucket="robson-datalake", prefix="x")),
        ("s3://abc", LakeURI("s3", bucket="abc")),
        ("s3://" + "a" * 63, LakeURI("s3", bucket="a" * 63)),
    ],
)
def test_parse_lake_uri(uri: str, expected: LakeURI) -> None:
    assert parse_lake_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("s3://", "names no bucket"),
        ("s3:///prefix", "names no bucket"),
        ("gs://bucket/prefix", "unsupported lake URI scheme 'gs'"),
        ("http://minio:9000/bucket", "unsupported lake URI scheme 'http'"),
        ("s3://Bucket/x", "invalid bucket name"),
        ("s3://ab/x", "invalid bucket name"),
        ("s3://" + "a" * 64, "invalid bucket name"),
        ("s3://-bucket/x", "invalid bucket name"),
        ("s3://bucket-/x", "invalid bucket name"),
        ("s3://my_bucket/x", "invalid bucket name"),
        ("s3://a..b/x", "invalid bucket name"),
        ("s3://192.168.1.10/x", "invalid bucket name"),
        ("s3://bucket:9000/x", "must not contain credentials or a port"),
        ("s3://bucket/a//b", "empty segment"),
        ("s3://bucket/a/../b", "'..' segment"),
        ("s3://bucket/x?versionId=1", "query string"),
        ("file://otherhost/srv/lake", "must be local"),
        ("file://", "names no directory"),
    ],
)
def test_parse_lake_uri_rejects(uri: str, message: str) -> None:
    with pytest.raises(InvalidURI, match=message.replace("(", r"\(").replace("?", r"\?")):
        parse_lake_uri(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "s3://AKIAEXAMPLE:topsecret@bucket/prefix",
        "s3://AKIAEXAMPLE:top/secret@bucket/prefix",
        "s3a://user:topsecret@bucket",
    ],
)
def test_parse_lake_uri_refuses_embedded_credentials_without_echoing_them(uri: str) -> None:
    with pytest.raises(InvalidURI) as excinfo:
        parse_lake_uri(uri)
    assert "secret" not in str(excinfo.value)
    assert "AKIAEXAMPLE" not in str(excinfo.value)


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "bronze/events/date=2024-12-27/part-00000001-0.parquet",
        "bronze/orders/client_id=1/date=2024-12-27/_metadata/manifest.json",
        "gold/training_sets/stop_outcome/v1.0.0/train/date=2024-12-27/x.parquet",
        "a/.hidden",
        "a/..b",
        "a/b.",
        "dir/tmp-file",
        "sym%20bol/é/ü",
    ],
)
def test_validate_key_accepts(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "empty key"),
        ("/abs/key", "absolute"),
        ("/", "absolute"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("a/b/", "empty segment"),
        ("..", "'..' segment"),
        ("../etc/passwd", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("a/./b", "'.' segment"),
        (".", "'.' segment"),
        ("a\\b", "backslash"),
        ("a\x00b", "NUL"),
        (".tmp-abc", "reserved temporary prefix"),
        ("bronze/.tmp-part.parquet.1234", "reserved temporary prefix"),
    ],
)
def test_validate_key_rejects(key: str, message: str) -> None:
    with pytest.raises(InvalidKey, match=message):
        validate_key(key)


def test_validate_key_rejects_non_strings() -> None:
    with pytest.raises(InvalidKey, match="must be a string"):
        validate_key(b"a/b")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("bronze", "events"), "bronze/events"),
        (("", "bronze/events"), "bronze/events"),
        (("lake", "", "x"), "lake/x"),
        (
            ("lake/prod", "bronze/events/date=2024-12-27", "part-0.parquet"),
            "lake/prod/bronze/events/date=2024-12-27/part-0.parquet",
        ),
        (("a",), "a"),
    ],
)
def test_join_key(parts: tuple[str, ...], expected: str) -> None:
    assert join_key(*parts) == expected


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ((), "no key parts"),
        (("", ""), "no key parts"),
        (("bronze", "../secrets"), "'..' segment"),
        (("bronze", "/etc/passwd"), "absolute"),
        (("bronze/", "x"), "empty segment"),
        (("bronze", "a//b"), "empty segment"),
    ],
)
def test_join_key_rejects(parts: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidKey, match=message):
        join_key(*parts)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("", ""), ("bronze", "bronze"), ("bronze/", "bronze"), ("bronze/events/", "bronze/events")],
)
def test_normalize_prefix(prefix: str, expected: str) -> None:
    assert normalize_prefix(prefix) == expected


@pytest.mark.parametrize(
    ("key", "prefix", "expected"),
    [
        ("bronze/events/x", "", True),
        ("bronze/events/x", "bronze", True),
        ("bronze/events/x", "bronze/events", True),
        ("bronze/events_v2/x", "bronze/events", False),
        ("bronze/events", "bronze/events", False),
        ("silver/x", "bronze", False),
    ],
)
def test_is_under(key: str, prefix: str, expected: bool) -> None:
    assert is_under(key, prefix) is expected


@pytest.mark.parametrize(
    ("bucket", "key", "scheme", "expected"),
    [
        ("robson-datalake", "", "s3", "s3://robson-datalake"),
        ("robson-datalake", "gold/x", "s3", "s3://robson-datalake/gold/x"),
        ("robson-datalake", "gold/x", "s3a", "s3a://robson-datalake/gold/x"),
    ],
)
def test_s3_object_uri(bucket: str, key: str, scheme: str, expected: str) -> None:
    assert s3_object_uri(bucket, key, scheme=scheme) == expected


def test_s3_object_uri_rejects_other_schemes() -> None:
    with pytest.raises(InvalidURI):
        s3_object_uri("bucket", "k", scheme="gs")


@pytest.mark.parametrize(
    ("partitions", "expected"),
    [
        ({"client_id": 1, "date": "2024-12-27"}, "client_id=1/date=2024-12-27"),
        ({"date": dt.date(2024, 12, 27)}, "date=2024-12-27"),
        ([("date", "2024-12-27"), ("client_id", 1)], "date=2024-12-27/client_id=1"),
        ({"strategy_id": 42, "date": dt.date(2025, 1, 1)}, "strategy_id=42/date=2025-01-01"),
        ({"client_id": 0}, "client_id=0"),
        ({"client_id": -3}, "client_id=-3"),
        ({"symbol": "BTCUSDC"}, "symbol=BTCUSDC"),
        ({"flag": True, "other": False}, "flag=true/other=false"),
        ({"price": Decimal("1.50")}, "price=1.50"),
        ({"ts": dt.datetime(2024, 12, 27, 13, 5)}, "ts=2024-12-27T13%3A05%3A00"),
        ({"path": "a/b"}, "path=a%2Fb"),
        ({"eq": "a=b"}, "eq=a%3Db"),
        ({"pct": "100%"}, "pct=100%25"),
        ({"q": "what?"}, "q=what%3F"),
        ({"space": "a b"}, "space=a b"),
        ({"unicode": "é"}, "unicode=é"),
        ({"Col_1": "x"}, "Col_1=x"),
        ({"_hidden": "x"}, "_hidden=x"),
    ],
)
def test_partition_path(partitions: object, expected: str) -> None:
    assert partition_path(partitions) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("partitions", "message"),
    [
        ({}, "no partition columns"),
        ({"client_id": None}, "unsupported partition value type NoneType"),
        ({"x": 1.5}, "unsupported partition value type float"),
        ({"x": ""}, "must not be empty"),
        ({"1abc": 1}, "invalid partition column name"),
        ({"a-b": 1}, "invalid partition column name"),
        ({"a/b": 1}, "invalid partition column name"),
        ({"": 1}, "invalid partition column name"),
        ([("date", "x"), ("date", "y")], "given twice"),
    ],
)
def test_partition_path_rejects(partitions: object, message: str) -> None:
    with pytest.raises(InvalidKey, match=message):
        partition_path(partitions)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    ["plain", "a/b", "a=b", "100%", "%2F", "x:y", "tab\there", "{[]}^*'\"#?\\", "é ü", ""],
)
def test_partition_value_escaping_round_trips(value: str) -> None:
    escaped = escape_partition_value(value)
    assert "/" not in escaped
    assert "=" not in escaped
    assert unescape_partition_value(escaped) == value


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("client_id=1/date=2024-12-27", {"client_id": "1", "date": "2024-12-27"}),
        (
            "bronze/orders/client_id=7/date=2024-12-27/part-0.parquet",
            {"client_id": "7", "date": "2024-12-27"},
        ),
        ("/date=2024-12-27/", {"date": "2024-12-27"}),
        ("ts=2024-12-27T13%3A05%3A00", {"ts": "2024-12-27T13:05:00"}),
        ("bronze/events", {}),
        ("x=/y", {}),
    ],
)
def test_parse_partition_path(path: str, expected: dict[str, str]) -> None:
    assert parse_partition_path(path) == expected


def test_partition_path_round_trips_through_parse() -> None:
    partitions = {"client_id": "12", "symbol": "BTC/USDC", "date": "2024-12-27"}
    assert parse_partition_path(partition_path(partitions)) == partitions


def test_uri_module_imports_neither_django_nor_boto3() -> None:
    code = (
        "import sys, datalake.storage.uri; "
        "print(sorted(m for m in ('django', 'boto3', 'botocore', 'pyspark') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"
