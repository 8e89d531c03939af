"""S3 fixtures: a real HTTP S3 endpoint (moto in server mode) with a fresh bucket per test.

The server runs in a thread of the test process on a free port of 127.0.0.1; the
credentials are fake, set in the environment for the whole session (as boto3 reads
them in production), and any AWS configuration of the machine running the tests is
masked so it cannot leak in.
"""

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

FAKE_ACCESS_KEY_ID = "AKIAFAKETESTKEY00001"
FAKE_SECRET_ACCESS_KEY = "fake-secret-Zq8vX3mP0wLr7TnB2cYk"
FAKE_SESSION_TOKEN = "fake-session-token-Hs5Jd9Ke1Qp4"
S3_REGION = "us-east-1"

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
    "AWS_SESSION_TOKEN": FAKE_SESSION_TOKEN,
    "AWS_DEFAULT_REGION": S3_REGION,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_AWS_ENV_MASKED = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE")


@pytest.fixture(scope="session")
def aws_credentials() -> Iterator[dict[str, str]]:
    """Set fake AWS credentials in os.environ for the session and return them."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in _AWS_ENV.items():
            mp.setenv(name, value)
        for name in _AWS_ENV_MASKED:
            mp.delenv(name, raising=False)
        yield dict(_AWS_ENV)


@pytest.fixture(scope="session")
def s3_endpoint(aws_credentials: dict[str, str]) -> Iterator[str]:
    """Start moto's S3 server on a free local port and return its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Any:
    """A plain boto3 client on the test endpoint, to arrange and inspect behind the storage."""
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=s3_endpoint, region_name=S3_REGION)


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """Create a bucket with a unique name for this test and return the name."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def make_s3_storage(s3_endpoint: str, s3_bucket: str) -> Callable[..., Any]:
    """Return a factory of S3Storage objects on this test's bucket (keyword overrides)."""
    from datalake.storage.s3 import S3Storage

    def make(**overrides: Any) -> S3Storage:
        options: dict[str, Any] = {
            "prefix": "lake",
            "endpoint_url": s3_endpoint,
            "region": S3_REGION,
            "addressing_style": "path",
        }
        options.update(overrides)
        return S3Storage(options.pop("bucket", s3_bucket), **options)

    return make


@pytest.fixture
def s3_storage(make_s3_storage: Callable[..., Any]) -> Any:
    """An S3Storage under the prefix "lake" of a fresh bucket."""
    return make_s3_storage()
