"""build_training_set: arguments, wiring to spark-submit, messages (no Spark needed)."""

import io
from datetime import date, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from datalake.gold import BuildOptions, InvalidBuild
from datalake.models import JobRun

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("options", "args"),
    [
        (BuildOptions(), []),
        (BuildOptions(version="v1.2.0"), ["--version", "v1.2.0"]),
        (BuildOptions(as_of=datetime(2024, 12, 28)), ["--as-of", "2024-12-28T00:00:00+00:00"]),
        (BuildOptions(test_from=date(2024, 12, 20), embargo="2h"),
         ["--test-from", "2024-12-20", "--embargo", "2h"]),
        (BuildOptions(test_fraction=0.25), ["--test-fraction", "0.25"]),
    ],
)  # fmt: skip
def test_job_arguments(options: BuildOptions, args: list[str]) -> None:
    assert options.job_args() == args


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (BuildOptions(version="1.0"), "--version"),
        (BuildOptions(test_from=date(2024, 1, 1), test_fraction=0.2), "not both"),
        (BuildOptions(test_fraction=1.0), "between 0 and 1"),
        (BuildOptions(embargo="a while"), "--embargo"),
    ],
)
def test_bad_arguments(options: BuildOptions, message: str) -> None:
    with pytest.raises(InvalidBuild, match=message):
        options.job_args()


@pytest.fixture
def recording_submit(tmp_path, settings):
    """A spark-submit that records its command line and fails (no Spark needed)."""
    script = tmp_path / "spark-submit"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\nexit 1\n')
    script.chmod(0o755)
    settings.DATALAKE_SPARK_SUBMIT = str(script)
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_SPARK_CLASS_ARCHIVE_DIR = "off"
    return lambda: (tmp_path / "argv").read_text().splitlines()


def test_the_command_passes_its_arguments_and_the_input_runs(recording_submit) -> None:
    silver = JobRun.objects.start("silver.stop_executions", layer=JobRun.Layer.SILVER)
    silver.succeed()
    klines = JobRun.objects.start("bronze.export", layer=JobRun.Layer.BRONZE, dataset="klines")
    klines.succeed()
    JobRun.objects.start("bronze.export", layer=JobRun.Layer.BRONZE, dataset="orders").fail("x")

    with pytest.raises(CommandError, match=r"gold\.training_sets\.stop_outcome failed"):
        call_command("build_training_set", "stop_outcome", "--version", "v1.0.0",
                     "--as-of", "2024-12-28T00:00:00Z", "--test-fraction", "0.3",
                     stdout=io.StringIO())  # fmt: skip
    argv = recording_submit()
    job = argv.index("gold.training_sets.stop_outcome")
    assert argv[job + 1 : job + 3] == ["--lake-uri", argv[job + 2]]
    tail = argv[argv.index("--result-file") + 2 :]
    assert tail == [
        "--version", "v1.0.0", "--as-of", "2024-12-28T00:00:00+00:00", "--test-fraction", "0.3",
        "--input-runs", f"silver.stop_executions={silver.pk},bronze.klines={klines.pk}",
    ]  # fmt: skip
    run = JobRun.objects.get(job_name="gold.training_sets.stop_outcome")
    assert (run.layer, run.status, run.dataset) == ("gold", "FAILED", "training_sets/stop_outcome")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stop_outcome", "--version", "one"], "--version must look like v1.0.0"),
        (["stop_outcome", "--as-of", "yesterday"], "--as-of: 'yesterday' is not an ISO"),
        (["stop_outcome", "--test-fraction", "2"], "between 0 and 1"),
    ],
)
def test_bad_input_is_one_clear_line_and_no_run(recording_submit, args, message) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("build_training_set", *args, stdout=io.StringIO())
    assert not JobRun.objects.filter(layer=JobRun.Layer.GOLD).exists()


def test_the_celery_task_takes_json_arguments(recording_submit) -> None:
    from datalake.spark.runner import SparkJobFailed
    from datalake.tasks import build_slippage_prediction

    result = build_slippage_prediction.apply(
        kwargs={"version": "v2.0.0", "as_of": "2024-12-28T00:00:00Z", "test_from": "2024-12-20"}
    )
    assert isinstance(result.result, SparkJobFailed)
    argv = recording_submit()
    tail = argv[argv.index("gold.training_sets.slippage_prediction") + 7 :]
    assert tail == ["--version", "v2.0.0", "--as-of", "2024-12-28T00:00:00+00:00",
                    "--test-from", "2024-12-20"]  # fmt: skip
    run = JobRun.objects.get(job_name="gold.training_sets.slippage_prediction")
    assert (run.trigger, run.status) == (JobRun.Trigger.SCHEDULE, JobRun.Status.FAILED)
