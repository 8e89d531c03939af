"""A real Celery beat and worker on Redis: the schedules written by setup_schedules fire,
the hourly bronze-ingest (here every 2 s) exports and records its runs, and a schedule
whose task keeps failing pauses itself."""

import json
import subprocess
import sys
import time
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from datalake.models import JobRun, ManagedSchedule
from tests import factories

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 60


def start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *args, "--loglevel=INFO"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def test_beat_and_worker_run_the_scheduled_export(redis_url, tmp_path, subprocess_env, settings):
    factories.events(factories.operation(), [1, 2, 3])
    settings.DATALAKE_SCHEDULE_OVERRIDES = {"bronze-ingest": "2s"}
    call_command("setup_schedules", stdout=StringIO())
    # A schedule whose task always fails (an unknown dataset), as an operator might add.
    broken = PeriodicTask.objects.create(
        name="broken-export",
        task="datalake.export_bronze",
        kwargs=json.dumps({"dataset": "no_such_dataset"}),
        interval=IntervalSchedule.objects.create(every=1, period="seconds"),
    )
    ManagedSchedule.objects.create(periodic_task=broken, fingerprint="-")
    # Our own queue: other test runs may share this Redis.
    queue = f"test-beat-{uuid.uuid4().hex[:8]}"
    PeriodicTask.objects.update(queue=queue)

    env = {
        **subprocess_env,
        "CELERY_BROKER_URL": redis_url,
        "DATALAKE_URI": str(tmp_path / "lake"),
        "DATALAKE_WORK_DIR": str(tmp_path / "work"),
        "DATALAKE_SCHEDULE_MAX_FAILURES": "2",
    }
    worker = start(["worker", "--pool=solo", "--without-gossip", "--without-mingle",
                    "--without-heartbeat", "-Q", queue], tmp_path / "worker.log", env)  # fmt: skip
    beat = start(["beat", "--max-interval=1", "-s", str(tmp_path / "beat-schedule")],
                 tmp_path / "beat.log", env)  # fmt: skip

    def logs() -> str:
        names = ("worker.log", "beat.log")
        return "\n".join(f"--- {n} ---\n" + (tmp_path / n).read_text() for n in names)

    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            ingest = JobRun.objects.filter(
                job_name="bronze.ingest", status=JobRun.Status.SUCCEEDED
            ).first()
            broken.refresh_from_db()
            if ingest is not None and not broken.enabled:
                break
            assert worker.poll() is None, logs()
            assert beat.poll() is None, logs()
            time.sleep(0.25)
        else:
            pytest.fail(f"no scheduled export and pause within {DEADLINE_SECONDS} s:\n{logs()}")
    finally:
        for process in (beat, worker):
            process.terminate()
        for process in (beat, worker):
            process.wait(timeout=30)

    assert ingest.trigger == JobRun.Trigger.SCHEDULE
    events = ingest.children.get(dataset="events")
    assert (events.status, events.rows_out) == (JobRun.Status.SUCCEEDED, 3)
    assert ingest.rows_out == 3
    assert sorted(ingest.children.values_list("dataset", flat=True)) == [
        "events", "klines", "orders", "portfolio", "trades",
    ]  # fmt: skip
    assert list((tmp_path / "lake" / "bronze" / "events").glob("date=*/*.parquet"))

    assert "2 consecutive failures" in broken.description
    assert "no_such_dataset" in broken.description
    assert ManagedSchedule.objects.get(periodic_task=broken).paused_at is not None
    assert PeriodicTask.objects.get(name="bronze-ingest").enabled  # a healthy one stays on
