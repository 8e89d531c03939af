"""The lake in an S3 bucket (AWS, MinIO, Contabo or any S3-compatible store) via boto3.

Credentials are never passed in: boto3 finds them itself (environment, profile,
instance role), so they cannot leak through this object's repr or its messages.
"""

import datetime as dt
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import boto3.exceptions
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from datalake import faults
from datalake.storage.base import (
    DEFAULT_STALE_AFTER,
    InvalidStorageKey,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    StorageUnavailable,
    checked_key,
    checked_prefix,
)
from datalake.storage.uri import (
    MAX_S3_KEY_BYTES,
    InvalidURI,
    join_key,
    s3_object_uri,
    validate_bucket,
)

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
ADDRESSING_STYLES = ("auto", "path", "virtual")

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_ACCESS_CODES = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
)
_UNAVAILABLE_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}
)
_UNREACHABLE = (
    botocore.exceptions.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError...
    botocore.exceptions.HTTPClientError,  # ReadTimeoutError, ConnectionClosedError...
    boto3.exceptions.RetriesExceededError,
)

# botocore's DEBUG logs print the signed request: the session token in clear and the
# access key id in the Authorization header (the secret key itself is never sent).
_LOGGED_CREDENTIALS = re.compile(
    r"(?P<head>x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)(?P<value>[^\s'\",}]+)"
    r"|(?P<head2>Credential=)(?P<value2>[^/\s'\",]+)"
    r"|(?P<head3>Signature=)(?P<value3>[0-9a-fA-F]+)",
    re.IGNORECASE,
)


def _mask(match: re.Match[str]) -> str:
    return (match.group("head") or match.group("head2") or match.group("head3")) + "***"


class _CredentialFilter(logging.Filter):
    """Mask credentials in the records of the botocore loggers that print requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        redacted = _LOGGED_CREDENTIALS.sub(_mask, message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def _install_log_filter() -> None:
    for name in ("botocore.auth", "botocore.endpoint", "botocore.httpsession"):
        target = logging.getLogger(name)
        if not any(isinstance(f, _CredentialFilter) for f in target.filters):
            target.addFilter(_CredentialFilter())


_install_log_filter()


class S3Storage(Storage):
    """Objects are keys under `prefix` in `bucket`."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = "us-east-1",
        addressing_style: str = "auto",
        max_attempts: int = 5,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_pool_connections: int = 16,
        multipart_threshold: int = 64 * MiB,
        multipart_chunksize: int = 16 * MiB,
        max_concurrency: int = 8,
        page_size: int = 1000,
    ) -> None:
        try:
            self.bucket = validate_bucket(bucket)
        except InvalidURI as exc:
            raise StorageError(str(exc)) from None
        self.prefix = checked_prefix(prefix)
        if addressing_style not in ADDRESSING_STYLES:
            raise StorageError(
                f"DATALAKE_S3_ADDRESSING_STYLE must be one of {', '.join(ADDRESSING_STYLES)}, "
                f"got {addressing_style!r}"
            )
        if endpoint_url:
            parts = urlsplit(endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise StorageError("DATALAKE_S3_ENDPOINT_URL must be an http(s):// URL")
            if parts.username or parts.password:
                # Not echoed: the userinfo would be a credential.
                raise StorageError(
                    "DATALAKE_S3_ENDPOINT_URL must not contain credentials: set "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
                )
        if page_size < 1 or page_size > 1000:
            raise StorageError(f"page_size must be between 1 and 1000, got {page_size}")
        config = Config(
            region_name=region or None,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            s3={"addressing_style": addressing_style},
        )
        # A session per storage: boto3's default session is not thread-safe to create
        # clients from, while a client itself may be shared by threads.
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None, config=config
        )
        faults.register_s3_hooks(self._client)
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
            use_threads=max_concurrency > 1,
            preferred_transfer_client="classic",
        )
        self.page_size = page_size

    @property
    def client(self) -> Any:
        """The boto3 S3 client (for event hooks and checks; not for lake writes)."""
        return self._client

    @property
    def endpoint(self) -> str:
        """The endpoint URL requests go to (resolved by botocore when not configured)."""
        return self._client.meta.endpoint_url

    def __repr__(self) -> str:
        return (
            f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={self.endpoint!r})"
        )

    def _where(self) -> str:
        return f"bucket {self.bucket!r} at {self.endpoint}"

    def _full_key(self, key: str) -> str:
        full = join_key(self.prefix, checked_key(key))
        if len(full.encode()) > MAX_S3_KEY_BYTES:
            raise InvalidStorageKey(f"key {key!r} is longer than {MAX_S3_KEY_BYTES} bytes")
        return full

    def _key_of(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def _list_prefix(self, prefix: str) -> str:
        """Return the S3 prefix matching everything under the directory-like `prefix`."""
        path = join_key(self.prefix, prefix) if (self.prefix or prefix) else ""
        return f"{path}/" if path else ""

    @contextmanager
    def _errors(self, action: str, key: str = "") -> Iterator[None]:
        """Turn botocore/boto3 failures into the contract's named exceptions."""
        what = f"{action} {key!r}" if key else action
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            raise self._client_error(exc, what, key) from exc
        except boto3.exceptions.S3UploadFailedError as exc:
            # boto3 wraps the ClientError without chaining it explicitly.
            cause = exc.__context__
            if isinstance(cause, botocore.exceptions.ClientError):
                raise self._client_error(cause, what, key) from exc
            raise StorageError(f"S3 {what} failed ({self._where()})") from exc
        except _UNREACHABLE as exc:
            raise StorageUnavailable(
                f"S3 endpoint {self.endpoint} (bucket {self.bucket!r}) is unavailable during "
                f"{what}: {type(exc).__name__}: {exc}"
            ) from exc
        except botocore.exceptions.NoCredentialsError:
            raise StorageError(
                f"no S3 credentials found for {self._where()}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY in the environment"
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageError(
                f"S3 {what} failed ({self._where()}): {type(exc).__name__}: {exc}"
            ) from exc

    def _client_error(
        self, exc: botocore.exceptions.ClientError, what: str, key: str
    ) -> StorageError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in _NOT_FOUND_CODES and key:
            return ObjectNotFound(key, self.s3_uri())
        if code == "NoSuchBucket" or (code in _NOT_FOUND_CODES and not key):
            return StorageError(f"bucket {self.bucket!r} does not exist at {self.endpoint}")
        detail = f"{code or 'error'} (HTTP {status})"
        if error.get("Message"):
            # S3 never receives the secret key (requests are only signed with it), so
            # its messages cannot contain it.
            detail += f": {error['Message']}"
        if code in _ACCESS_CODES:
            return StorageError(
                f"S3 refused {what} on {self._where()}: {detail}; check the credentials "
                "in the environment and the bucket policy"
            )
        if code in _UNAVAILABLE_CODES or status >= 500:
            return StorageUnavailable(
                f"S3 endpoint {self.endpoint} (bucket {self.bucket!r}) kept failing during "
                f"{what}: {detail}"
            )
        return StorageError(f"S3 {what} failed on {self._where()}: {detail}")

    def publish_file(self, local_path: str | os.PathLike[str], key: str) -> ObjectInfo:
        full = self._full_key(key)
        if not os.path.isfile(local_path):
            raise FileNotFoundError(f"cannot publish {os.fspath(local_path)!r}: not a file")
        size = os.path.getsize(local_path)
        # Above the threshold this is a multipart upload, which S3 makes visible only at
        # CompleteMultipartUpload: readers never see part of the file.
        with self._errors("upload of", key):
            self._client.upload_file(
                os.fspath(local_path), self.bucket, full, Config=self.transfer_config
            )
        logger.debug("published %s (%d bytes) to %s", key, size, self.s3_uri())
        return ObjectInfo(key=key, size=size)

    def put_bytes(self, data: bytes, key: str) -> ObjectInfo:
        full = self._full_key(key)
        with self._errors("write of", key):
            self._client.put_object(Bucket=self.bucket, Key=full, Body=data)
        return ObjectInfo(key=key, size=len(data))

    def get_bytes(self, key: str) -> bytes:
        full = self._full_key(key)
        with self._errors("read of", key):
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            with response["Body"] as body:
                return body.read()

    def read_tail(self, key: str, nbytes: int) -> bytes:
        full = self._full_key(key)
        if nbytes <= 0:
            return b""
        with self._errors("read of", key):
            try:
                response = self._client.get_object(
                    Bucket=self.bucket, Key=full, Range=f"bytes=-{nbytes}"
                )
            except botocore.exceptions.ClientError as exc:
                # An empty object has no satisfiable range.
                if exc.response.get("Error", {}).get("Code") != "InvalidRange":
                    raise
                return b""
            return response["Body"].read()

    def download_file(self, key: str, local_path: str | os.PathLike[str]) -> ObjectInfo:
        full = self._full_key(key)
        Path(local_path).parent.mkdir(parents=True, exist_ok=True)
        # s3transfer downloads into a temporary sibling and renames it when complete.
        with self._errors("download of", key):
            self._client.download_file(
                self.bucket, full, os.fspath(local_path), Config=self.transfer_config
            )
        return ObjectInfo(key=key, size=os.path.getsize(local_path))

    def stat(self, key: str) -> ObjectInfo | None:
        full = self._full_key(key)
        try:
            with self._errors("stat of", key):
                head = self._client.head_object(Bucket=self.bucket, Key=full)
        except ObjectNotFound:
            return None
        return ObjectInfo(key=key, size=head["ContentLength"], last_modified=head["LastModified"])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        s3_prefix = self._list_prefix(checked_prefix(prefix))
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=s3_prefix, PaginationConfig={"PageSize": self.page_size}
        )
        with self._errors("listing of", prefix):
            for page in pages:
                for item in page.get("Contents", ()):
                    if item["Key"].endswith("/"):  # a "folder" marker, not an object
                        continue
                    yield ObjectInfo(
                        key=self._key_of(item["Key"]),
                        size=item["Size"],
                        last_modified=item.get("LastModified"),
                    )

    def delete(self, key: str) -> None:
        full = self._full_key(key)
        with self._errors("delete of", key):
            self._client.delete_object(Bucket=self.bucket, Key=full)
        logger.debug("deleted %s from %s", key, self.s3_uri())

    def delete_prefix(self, prefix: str) -> tuple[int, int]:
        prefix = checked_prefix(prefix)
        if not prefix:
            return super().delete_prefix(prefix)  # refuses
        files = size = 0
        batch: list[ObjectInfo] = []

        def flush() -> None:
            objects = [{"Key": self._full_key(info.key)} for info in batch]
            with self._errors("delete under", prefix):
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StorageError(
                    f"S3 refused to delete {len(response['Errors'])} object(s) under {prefix!r} "
                    f"on {self._where()}: {first.get('Code')} {first.get('Message', '')}"
                )
            batch.clear()

        for info in self.list(prefix):
            batch.append(info)
            files += 1
            size += info.size
            if len(batch) == 1000:  # the most one DeleteObjects request takes
                flush()
        if batch:
            flush()
        logger.info("deleted %s (%d files, %d bytes) from %s", prefix, files, size, self.s3_uri())
        return files, size

    def cleanup_incomplete(self, older_than: dt.timedelta = DEFAULT_STALE_AFTER) -> int:
        cutoff = dt.datetime.now(dt.UTC) - older_than
        paginator = self._client.get_paginator("list_multipart_uploads")
        removed = 0
        with self._errors("cleanup of incomplete uploads"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._list_prefix("")):
                for upload in page.get("Uploads", ()):
                    if upload["Initiated"] > cutoff:
                        continue
                    try:
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    except botocore.exceptions.ClientError as exc:
                        if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                            raise
                        continue  # completed or aborted meanwhile
                    removed += 1
        if removed:
            logger.info("aborted %d incomplete multipart upload(s) in %s", removed, self.s3_uri())
        return removed

    def uri(self, key: str = "") -> str:
        """Return the `s3a://` URI Spark's Hadoop S3A connector reads."""
        return self.s3_uri(key, scheme="s3a")

    def s3_uri(self, key: str = "", *, scheme: str = "s3") -> str:
        """Return the `s3://bucket/prefix/key` URI (the form AWS tools and pyarrow use)."""
        path = self._full_key(key) if key else self.prefix
        return s3_object_uri(self.bucket, path, scheme=scheme)

    def check(self) -> None:
        with self._errors("access check"):
            self._client.head_bucket(Bucket=self.bucket)
