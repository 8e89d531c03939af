"""Exactly-once under crashes: SIGKILL the exporter at each point, rerun, compare.

The exporter runs as a real `manage.py export_bronze` subprocess sharing the test
database, on the local lake and on S3 (moto server). DATALAKE_FAULT_POINT makes it kill
itself with SIGKILL at the named point of its first batch.
"""

import io
import signal
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datalake.bronze.verify import verify_dataset
from datalake.faults import POINTS
from datalake.models import ExportBatch, JobRun
from datalake.storage import get_storage
from tests import factories
from tests.lake_helpers import bronze_rows, source_rows, visible_parquet_keys

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["local", "s3"])
def lake_env(request, tmp_path, settings, subprocess_env):
    """Point this process and the exporter subprocess at the same fresh lake."""
    env = {**subprocess_env, "DATALAKE_WORK_DIR": str(tmp_path / "work")}
    if request.param == "local":
        env["DATALAKE_URI"] = str(tmp_path / "lake")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        env.update(request.getfixturevalue("aws_credentials"))
        env.update(
            DATALAKE_URI=f"s3://{bucket}/lake",
            DATALAKE_S3_ENDPOINT_URL=endpoint,
            DATALAKE_S3_ADDRESSING_STYLE="path",
        )
        settings.DATALAKE_S3_ENDPOINT_URL = endpoint
        settings.DATALAKE_S3_ADDRESSING_STYLE = "path"
    settings.DATALAKE_URI = env["DATALAKE_URI"]
    settings.DATALAKE_WORK_DIR = env["DATALAKE_WORK_DIR"]
    return env


def export(env: dict, fault: str | None = None) -> subprocess.CompletedProcess:
    env = dict(env)
    env.pop("DATALAKE_FAULT_POINT", None)
    if fault:
        env["DATALAKE_FAULT_POINT"] = fault
    return subprocess.run(
        [sys.executable, "manage.py", "export_bronze", "--dataset", "events",
         "--batch-size", "7", "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def arrange_source() -> None:
    op = factories.operation()
    # 20 events over midnight, one of them breaking the contract (quarantined)
    factories.events(op, range(1, 21), step=timedelta(minutes=1))
    factories.events(op, [21], quantity=Decimal("-2"))


@pytest.mark.parametrize("point", POINTS)
def test_killed_export_is_completed_exactly_once_by_the_next_run(point, lake_env):
    arrange_source()
    storage = get_storage()

    crashed = export(lake_env, fault=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr

    # What a reader sees right after the crash: only whole, readable files.
    for key in visible_parquet_keys(storage, "bronze/"):
        pq.read_table(io.BytesIO(storage.get_bytes(key)))

    rerun = export(lake_env)
    assert rerun.returncode == 0, rerun.stderr + rerun.stdout

    assert bronze_rows(storage, "events") == [
        r for r in source_rows("events") if r["event_seq"] != 21
    ]
    report = verify_dataset("events", storage)
    assert report.problems == []
    assert (report.rows, report.quarantined) == (20, 1)
    assert not ExportBatch.objects.filter(status=ExportBatch.Status.PLANNED).exists()
    dead, finished = JobRun.objects.order_by("pk")
    assert dead.status == JobRun.Status.FAILED
    assert "process died" in dead.error
    assert finished.status == JobRun.Status.SUCCEEDED

    # and a third run finds nothing left to do
    assert export(lake_env).returncode == 0
    assert len(bronze_rows(storage, "events")) == 20
