"""A real Celery worker, started by the test, runs a datalake task and records a JobRun."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from config.celery import app
from datalake.models import JobRun
from datalake.tasks import ping

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def run_through_worker(broker_url: str, tmp_path: Path, base_env: dict) -> JobRun:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**base_env, "CELERY_BROKER_URL": broker_url}
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", queue,
         "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    message = uuid.uuid4().hex
    try:
        with app.connection_for_write(broker_url) as conn:
            task = ping.apply_async(kwargs={"message": message}, queue=queue, connection=conn)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = JobRun.objects.filter(parameters__message=message).first()
            if run is not None and run.status != JobRun.Status.RUNNING:
                # The run knows its task, so admin can revoke it.
                assert run.celery_task_id == task.id
                return run
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        pytest.fail(
            "worker did not record the run within 60 s:\n" + (tmp_path / "worker.log").read_text()
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()


def test_round_trip_on_redis_broker(redis_url, tmp_path, subprocess_env):
    run = run_through_worker(redis_url, tmp_path, subprocess_env)
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.job_name == "ops.ping"
    assert run.trigger == JobRun.Trigger.SCHEDULE
    assert run.pid != os.getpid()


def test_round_trip_on_default_filesystem_broker(tmp_path, subprocess_env):
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        pytest.skip("the embedded filesystem broker is not the configured broker")
    run = run_through_worker(settings.CELERY_BROKER_URL, tmp_path, subprocess_env)
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.pid != os.getpid()
