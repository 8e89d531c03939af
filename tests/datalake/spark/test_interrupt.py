"""A command waiting for Spark that is terminated leaves neither Spark nor a RUNNING run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datalake.models import JobRun


def _wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0: look at its state.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.django_db(transaction=True)
def test_sigterm_kills_spark_submit_and_fails_the_run(tmp_path, subprocess_env) -> None:
    pid_file = tmp_path / "spark.pid"
    script = tmp_path / "spark-submit"
    script.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 300\n")
    script.chmod(0o755)
    env = {
        **subprocess_env,
        "SPARK_SUBMIT": str(script),
        "SPARK_CLASS_ARCHIVE_DIR": "off",
        "DATALAKE_URI": str(tmp_path / "lake"),
        "DATALAKE_WORK_DIR": str(tmp_path / "work"),
    }
    command = [sys.executable, "manage.py", "lake_sql", "SELECT 1"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    _wait_for(pid_file, 120)
    spark = int(pid_file.read_text())
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "Traceback" not in stderr
    deadline = time.monotonic() + 10
    while _alive(spark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(spark), "spark-submit outlived the command"
    run = JobRun.objects.get()
    assert run.status == JobRun.Status.FAILED
    assert "interrupted" in run.error
