"""Settings: embedded defaults need no server; production values come from the environment."""

import runpy
from pathlib import Path

import pytest

SETTINGS_FILE = Path(__file__).resolve().parent.parent / "config" / "settings.py"
OVERRIDABLE = [
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "DATALAKE_URI",
    "DATALAKE_S3_ENDPOINT_URL",
    "SPARK_MASTER",
    "AWS_SECRET_ACCESS_KEY",
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
]


def load_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> dict:
    """Evaluate config/settings.py afresh under a controlled environment."""
    for name in OVERRIDABLE:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATALAKE_VAR_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_defaults_need_no_server(monkeypatch, tmp_path):
    s = load_settings(monkeypatch, tmp_path)
    assert s["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s["DATABASES"]["default"]["NAME"] == str(tmp_path / "robson.sqlite3")
    assert s["CELERY_BROKER_URL"] == "filesystem://"
    assert Path(s["CELERY_BROKER_TRANSPORT_OPTIONS"]["data_folder_in"]).is_dir()
    assert s["DATALAKE_URI"] == str(tmp_path / "lake")
    assert s["DATALAKE_S3_ENDPOINT_URL"] is None
    assert s["DATALAKE_SPARK_MASTER"] == "local[*]"
    assert s["TIME_ZONE"] == "UTC"
    assert s["USE_TZ"] is True


def test_environment_overrides(monkeypatch, tmp_path):
    s = load_settings(
        monkeypatch,
        tmp_path,
        DATABASE_URL="postgres://robson:s3cret@db.internal:5433/robson",
        CELERY_BROKER_URL="redis://cache:6379/2",
        CELERY_RESULT_BACKEND="redis://cache:6379/3",
        DATALAKE_URI="s3://robson-datalake/prod",
        DATALAKE_S3_ENDPOINT_URL="https://eu2.contabostorage.com",
        SPARK_MASTER="spark://spark-master:7077",
        DJANGO_DEBUG="false",
    )
    db = s["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"]) == (
        "db.internal",
        5433,
        "robson",
        "robson",
    )
    assert "TEST" not in db  # the file-backed test database is a SQLite-only arrangement
    assert s["CELERY_BROKER_URL"] == "redis://cache:6379/2"
    assert "CELERY_BROKER_TRANSPORT_OPTIONS" not in s
    assert s["CELERY_RESULT_BACKEND"] == "redis://cache:6379/3"
    assert s["DATALAKE_URI"] == "s3://robson-datalake/prod"
    assert s["DATALAKE_S3_ENDPOINT_URL"] == "https://eu2.contabostorage.com"
    assert s["DATALAKE_SPARK_MASTER"] == "spark://spark-master:7077"
    assert s["DEBUG"] is False


def test_secrets_from_environment_are_listed_for_redaction(monkeypatch, tmp_path):
    s = load_settings(
        monkeypatch,
        tmp_path,
        DATABASE_URL="postgres://robson:db-password-1@db:5432/robson",
        AWS_SECRET_ACCESS_KEY="aws-secret-value-123",
    )
    assert "db-password-1" in s["DATALAKE_SECRET_VALUES"]
    assert "aws-secret-value-123" in s["DATALAKE_SECRET_VALUES"]
