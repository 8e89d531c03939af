"""Shared fixtures. Real services only: a test that needs one it cannot reach is skipped
with the reason shown in the summary (pytest -ra), never passed silently."""

import os
import socket
from urllib.parse import urlparse

import pytest
from django.conf import settings

pytest_plugins = ["tests.fixtures_s3"]


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Return the Redis URL the suite may use, or skip when none is configured/reachable."""
    url = os.environ.get("DATALAKE_TEST_REDIS_URL") or settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        pytest.skip("Redis not configured (set CELERY_BROKER_URL=redis://... to run this test)")
    parsed = urlparse(url)
    if not _reachable(parsed.hostname or "127.0.0.1", parsed.port or 6379):
        pytest.skip(f"Redis at {parsed.hostname}:{parsed.port} is not reachable")
    return url


@pytest.fixture(scope="session")
def is_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


@pytest.fixture
def require_postgres(is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://... to run this test)")


def test_database_url() -> str:
    """Return a DATABASE_URL for the test database, for subprocesses that must share it."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for a child process (manage.py, celery) sharing this test's database."""
    return {**os.environ, "DATABASE_URL": test_database_url(), "DATALAKE_LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="session")
def django_db_modify_db_settings() -> None:
    """Give this test run its own test database, so concurrent runs never collide."""
    for db in settings.DATABASES.values():
        test = db.setdefault("TEST", {})
        base = test.get("NAME") or f"test_{db['NAME']}"
        test["NAME"] = f"{base}_{os.getpid()}"
