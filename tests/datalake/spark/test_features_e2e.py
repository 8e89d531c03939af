"""End to end: bronze -> silver -> online features refresh via spark-submit -> cache ->
lookup, then the parity command (real Spark for both sides)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from django.core.cache import caches
from django.core.management import call_command

from datalake.feature_refresh import refresh_features
from datalake.features import Status, current_version, get_latest_features
from datalake.models import JobRun
from datalake.spark.runner import run_job
from tests.spark_jobs.builders import write_bronze
from tests.spark_jobs.test_training_sets import scenario

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_refresh_serves_the_new_values_and_parity_holds(tmp_path, settings, is_postgres) -> None:
    if is_postgres:
        pytest.skip("the database does not matter here: run once, on the embedded defaults")
    lake = tmp_path / "lake"
    settings.DATALAKE_URI = str(lake)
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    caches["features"].clear()
    events, orders, klines = scenario()
    write_bronze(lake, "events", events)
    write_bronze(lake, "orders", orders)
    write_bronze(lake, "klines", klines)
    silver = JobRun.objects.start("silver.stop_executions", layer=JobRun.Layer.SILVER)
    assert run_job("silver.stop_executions", [], run=silver).ok, silver.error

    run = refresh_features(as_of=datetime(2024, 12, 27, 14, tzinfo=UTC))
    assert run.status == JobRun.Status.SUCCEEDED, run.error
    assert run.checks.get(name="online_offline_parity").passed
    assert current_version() == run.pk
    answer = get_latest_features(1, "BTCUSDC")
    assert answer["source"] == "cache"
    assert answer["status"] == Status.STALE  # as of 2024: older than the maximum age
    assert answer["as_of"] == datetime(2024, 12, 27, 14, tzinfo=UTC)
    assert answer["features"]["hour_of_day"] == 14

    out = io.StringIO()
    call_command("check_feature_parity", "--samples", "5", stdout=out)
    assert "parity OK: 2 served values match" in out.getvalue()
    caches["features"].clear()
