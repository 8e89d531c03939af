"""Lake URIs, object keys and Hive partition paths as pure functions.

No Django, no boto3: the same rules serve the storage backends, the exporters and the
spark-submit builder, and are tested with plain tables.

A key is a relative, '/'-separated name such as
`bronze/events/date=2024-12-27/part-00000001-0.parquet`: no leading or trailing slash,
no empty, `.` or `..` segment, no backslash or NUL, and no segment that starts with the
temporary-file prefix the local backend hides its in-flight writes under.
"""

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

TEMP_PREFIX = ".tmp-"
S3_SCHEMES = frozenset({"s3", "s3a"})
MAX_S3_KEY_BYTES = 1024

# S3 bucket naming rules (also enforced by MinIO and most S3-compatible stores).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_PARTITION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The characters Hive and Spark percent-escape in partition values
# (ExternalCatalogUtils.escapePathName), so values round-trip through Spark unchanged.
_ESCAPED = frozenset([chr(c) for c in range(0x01, 0x20)] + list("\"#%'*/:=?\\\x7f{[]^"))


class InvalidKey(ValueError):
    """A key, prefix or partition value that the lake cannot store."""


class InvalidURI(ValueError):
    """A lake URI that names no usable location."""


@dataclass(frozen=True)
class LakeURI:
    """Where the lake lives: a local directory or an S3 bucket and key prefix."""

    scheme: str
    """"file" or "s3"."""
    path: str = ""
    """The directory for "file" (as given: may be relative); empty for "s3"."""
    bucket: str = ""
    prefix: str = ""
    """Key prefix inside the bucket, without leading or trailing slash; may be empty."""

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"


def parse_lake_uri(uri: str) -> LakeURI:
    """Parse a DATALAKE_URI value: a path, `file:///path`, or `s3://bucket/prefix`.

    `s3a://` is accepted as a synonym of `s3://`. Credentials embedded in the URI are
    refused (and never echoed back): they belong in the environment.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidURI("the lake URI is empty: set DATALAKE_URI to a directory or s3://bucket")
    uri = uri.strip()
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return LakeURI(scheme="file", path=uri)
    scheme = scheme.lower()
    if scheme == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise InvalidURI(f"file URIs must be local (file:///path), got host {parts.netloc!r}")
        if not parts.path:
            raise InvalidURI("the file URI names no directory")
        return LakeURI(scheme="file", path=parts.path)
    if scheme not in S3_SCHEMES:
        raise InvalidURI(
            f"unsupported lake URI scheme {scheme!r}: use a path or s3://bucket/prefix"
        )
    bucket, _, prefix = rest.partition("/")
    if "@" in bucket or ":" in bucket:
        raise InvalidURI(
            "the lake URI must not contain credentials or a port: put the endpoint in "
            "DATALAKE_S3_ENDPOINT_URL and the keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    if "?" in rest or "#" in rest:
        raise InvalidURI("the lake URI must not have a query string or fragment")
    if not bucket:
        raise InvalidURI(f"the lake URI {uri!r} names no bucket: use s3://bucket/prefix")
    validate_bucket(bucket)
    prefix = prefix.strip("/")
    if prefix:
        try:
            validate_key(prefix)
        except InvalidKey as exc:
            raise InvalidURI(f"bad key prefix in lake URI {uri!r}: {exc}") from None
    return LakeURI(scheme="s3", bucket=bucket, prefix=prefix)


def validate_bucket(bucket: str) -> str:
    """Return `bucket` if it is a valid S3 bucket name, else raise InvalidURI."""
    if not _BUCKET.match(bucket) or ".." in bucket or _IP_ADDRESS.match(bucket):
        raise InvalidURI(
            f"invalid bucket name {bucket!r}: 3-63 characters of lowercase letters, digits, "
            "'.' and '-', starting and ending with a letter or digit"
        )
    return bucket


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a valid object key, else raise InvalidKey."""
    if not isinstance(key, str):
        raise InvalidKey(f"a key must be a string, got {type(key).__name__}")
    if not key:
        raise InvalidKey("empty key")
    if "\\" in key or "\x00" in key:
        raise InvalidKey(f"key {key!r} contains a backslash or NUL")
    if key.startswith("/"):
        raise InvalidKey(f"key {key!r} is absolute: keys are relative to the lake root")
    for segment in key.split("/"):
        if segment == "":
            raise InvalidKey(f"key {key!r} has an empty segment")
        if segment in (".", ".."):
            raise InvalidKey(f"key {key!r} has a {segment!r} segment")
        if segment.startswith(TEMP_PREFIX):
            raise InvalidKey(f"key {key!r} uses the reserved temporary prefix {TEMP_PREFIX!r}")
    return key


def join_key(*parts: str) -> str:
    """Join key parts with '/' and validate the result.

    Empty parts are skipped, so `join_key(prefix, key)` works with an empty prefix;
    each part may itself contain '/' but must be a valid key on its own.
    """
    kept = [validate_key(part) for part in parts if part != ""]
    if not kept:
        raise InvalidKey("no key parts to join")
    return "/".join(kept)


def normalize_prefix(prefix: str) -> str:
    """Return a listing prefix without trailing slash ("" for the whole lake)."""
    prefix = prefix.rstrip("/") if prefix else ""
    return validate_key(prefix) if prefix else ""


def is_under(key: str, prefix: str) -> bool:
    """Tell whether `key` lies under the directory-like `prefix` ("" holds every key)."""
    return not prefix or key.startswith(prefix + "/")


def s3_object_uri(bucket: str, key: str = "", *, scheme: str = "s3") -> str:
    """Return `scheme://bucket/key` (`s3a` for Spark's Hadoop connector)."""
    if scheme not in S3_SCHEMES:
        raise InvalidURI(f"unsupported S3 scheme {scheme!r}")
    return f"{scheme}://{bucket}/{key}" if key else f"{scheme}://{bucket}"


def escape_partition_value(value: str) -> str:
    """Percent-escape a partition value the way Hive and Spark do."""
    return "".join(f"%{ord(c):02X}" if c in _ESCAPED else c for c in value)


def unescape_partition_value(value: str) -> str:
    """Reverse `escape_partition_value`."""
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


def format_partition_value(value: object) -> str:
    """Return the text form of a partition value (dates in ISO form, booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):  # datetime too
        return value.isoformat()
    if isinstance(value, int | str | Decimal):
        text = str(value)
        if text == "":
            raise InvalidKey("a partition value must not be empty")
        return text
    raise InvalidKey(
        f"unsupported partition value type {type(value).__name__}: use str, int, bool, "
        "Decimal or date"
    )


def partition_path(partitions: Mapping[str, object] | Iterable[tuple[str, object]]) -> str:
    """Return the Hive partition path for ordered (column, value) pairs.

    `partition_path({"client_id": 1, "date": "2024-12-27"})` is
    `"client_id=1/date=2024-12-27"`. Values are escaped as Spark escapes them.
    """
    pairs = list(partitions.items() if isinstance(partitions, Mapping) else partitions)
    if not pairs:
        raise InvalidKey("no partition columns given")
    segments = []
    seen: set[str] = set()
    for name, value in pairs:
        if not isinstance(name, str) or not _PARTITION_NAME.match(name):
            raise InvalidKey(f"invalid partition column name {name!r}")
        if name in seen:
            raise InvalidKey(f"partition column {name!r} given twice")
        seen.add(name)
        segments.append(f"{name}={escape_partition_value(format_partition_value(value))}")
    return "/".join(segments)


def parse_partition_path(path: str) -> dict[str, str]:
    """Return the (column -> unescaped value) pairs of the `name=value` segments in `path`.

    Segments that are not `name=value` (the dataset name, a file name) are ignored.
    """
    result: dict[str, str] = {}
    for segment in path.strip("/").split("/"):
        name, sep, value = segment.partition("=")
        if sep and _PARTITION_NAME.match(name) and value:
            result[name] = unescape_partition_value(value)
    return result
