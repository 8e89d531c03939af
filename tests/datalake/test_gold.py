"""build_training_set: arguments, wiring to spark-submit, messages (no Spark needed)."""

import io
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from datalake.gold import BuildOptions, InvalidBuild
from datalake.models import JobRun
from datalake.spark.runner import SparkJobFailed

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


def test_the_weekly_schedules_run_the_registered_gold_tasks() -> None:
    from config.celery import app
    from datalake.schedules import schedule_table

    app.loader.import_default_modules()
    gold = {s.name: (s.task, s.kwargs) for s in schedule_table() if s.name.startswith("gold")}
    assert gold == {
        "gold-features.stop_outcome": ("datalake.build_stop_outcome", {}),
        "gold-features.slippage_prediction": ("datalake.build_slippage_prediction", {}),
    }
    assert {task for task, _ in gold.values()} <= set(app.tasks)


def test_a_build_records_the_runs_it_consumed_since_the_last_build(recording_submit) -> None:
    def succeeded(job_name: str, layer: str, dataset: str = "") -> JobRun:
        run = JobRun.objects.start(job_name, layer=layer, dataset=dataset)
        run.succeed()
        return run

    old_silver = succeeded("silver.stop_executions", JobRun.Layer.SILVER)
    last = succeeded("gold.training_sets.stop_outcome", JobRun.Layer.GOLD, "training_sets/x")
    last.consumed.add(old_silver)
    new_silver = succeeded("silver.stop_executions", JobRun.Layer.SILVER)
    klines = succeeded("bronze.export", JobRun.Layer.BRONZE, "klines")
    succeeded("bronze.export", JobRun.Layer.BRONZE, "events")  # not an input of gold
    succeeded("silver.operations", JobRun.Layer.SILVER)  # nor this one
    JobRun.objects.start("bronze.export", layer=JobRun.Layer.BRONZE, dataset="orders").fail("x")

    with pytest.raises(CommandError):
        call_command("build_training_set", "stop_outcome", stdout=io.StringIO())
    build = JobRun.objects.filter(job_name="gold.training_sets.stop_outcome").latest("pk")
    assert build.status == JobRun.Status.FAILED
    assert list(build.consumed.order_by("pk")) == [new_silver, klines]
    # The other set has never been built: it consumed everything published so far.
    with pytest.raises(CommandError):
        call_command("build_training_set", "slippage_prediction", stdout=io.StringIO())
    other = JobRun.objects.get(job_name="gold.training_sets.slippage_prediction")
    assert list(other.consumed.order_by("pk")) == [old_silver, new_silver, klines]


@pytest.mark.django_db(transaction=True)
def test_a_build_started_while_another_runs_is_skipped(tmp_path, settings) -> None:
    from datalake.tasks import build_stop_outcome

    # The first build's spark-submit says it started, then waits for `go` (at most 60 s).
    script = tmp_path / "spark-submit"
    script.write_text(
        f"#!/bin/sh\ntouch {tmp_path}/started\n"
        f"for i in $(seq 600); do [ -e {tmp_path}/go ] && exit 1; sleep 0.1; done\nexit 1\n"
    )
    script.chmod(0o755)
    settings.DATALAKE_SPARK_SUBMIT = str(script)
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_SPARK_CLASS_ARCHIVE_DIR = "off"

    def wait_for(path, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not path.exists():
            assert time.monotonic() < deadline, f"{path} never appeared"
            time.sleep(0.05)

    # Another thread has its own database connection, as another worker would.
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(lambda: build_stop_outcome.apply())
        wait_for(tmp_path / "started")
        (tmp_path / "started").unlink()
        second = JobRun.objects.get(pk=build_stop_outcome.apply().get())
        (tmp_path / "go").touch()
        assert isinstance(first.result().result, SparkJobFailed)
    assert second.status == JobRun.Status.SKIPPED
    assert "another run holds the lock" in second.error
    assert not (tmp_path / "started").exists()  # the skipped build never ran spark-submit
    runs = JobRun.objects.filter(job_name="gold.training_sets.stop_outcome")
    assert sorted(runs.values_list("status", flat=True)) == ["FAILED", "SKIPPED"]
