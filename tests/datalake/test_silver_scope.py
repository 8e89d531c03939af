"""Which bronze dates a daily silver run recomputes: read from the export batches."""

import pytest

from datalake.models import ExportBatch, JobRun
from datalake.silver import NewBronze, new_bronze, run_silver
from datalake.spark.runner import SparkJobFailed

pytestmark = pytest.mark.django_db


def batch(dataset: str, number: int, dates: list[str], status=ExportBatch.Status.COMMITTED):
    files = [{"kind": "data", "partition": {"date": d}, "key": f"{d}/{number}"} for d in dates]
    files.append({"kind": "manifest", "partition": {"date": dates[0]}, "key": "m"})
    return ExportBatch.objects.create(
        dataset=dataset, number=number, status=status, files=files,
        watermark_before=0, watermark_after=0,
    )  # fmt: skip


def test_dates_come_from_the_committed_batches_of_the_job_sources():
    first = batch("events", 1, ["2024-12-20"])
    batch("orders", 1, ["2024-12-21", "2024-12-22"])
    batch("portfolio", 1, ["2024-12-25"])
    new = new_bronze(("orders", "events"), 0)
    assert new.dates == ["2024-12-20", "2024-12-21", "2024-12-22"]
    assert new.keys == ["2024-12-20/1", "2024-12-21/1", "2024-12-22/1"]  # data files only
    new = new_bronze(("orders", "events"), first.pk)
    assert new.dates == ["2024-12-21", "2024-12-22"]
    assert new.newest == ExportBatch.objects.get(dataset="orders").pk
    assert new_bronze(("orders", "events"), new.newest) == NewBronze([], [], new.newest)


def test_the_cursor_stops_before_a_batch_still_in_flight():
    done = batch("events", 1, ["2024-12-20"])
    late = batch("events", 2, ["2024-12-21"], status=ExportBatch.Status.PLANNED)
    batch("orders", 1, ["2024-12-22"])  # committed after the events batch was planned
    new = new_bronze(("orders", "events"), 0)
    assert (new.dates, new.newest) == (["2024-12-20"], done.pk)

    # The crashed export is completed by the next run: nothing was skipped.
    late.status = ExportBatch.Status.COMMITTED
    late.save()
    assert new_bronze(("orders", "events"), new.newest).dates == ["2024-12-21", "2024-12-22"]


def test_a_daily_run_gets_its_new_files_and_the_daily_jvm_options(recording_submit, settings):
    settings.DATALAKE_SPARK_DAILY_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"
    first = batch("events", 1, ["2024-12-20"])
    JobRun.objects.start(
        "silver.stop_executions", layer=JobRun.Layer.SILVER, cursor_end=str(first.pk)
    ).succeed()
    batch("events", 2, ["2024-12-21", "2024-12-22"])

    with pytest.raises(SparkJobFailed):
        run_silver("silver.stop_executions")
    argv = recording_submit()
    assert argv[argv.index("--dates") + 1] == "2024-12-21,2024-12-22"
    assert argv[argv.index("--new-files") + 1] == "2024-12-21/2,2024-12-22/2"
    assert "spark.driver.extraJavaOptions=-XX:TieredStopAtLevel=1" in argv

    with pytest.raises(SparkJobFailed):
        run_silver("silver.stop_executions", full=True)
    argv = recording_submit()
    assert "--dates" not in argv
    assert not any(a.startswith("spark.driver.extraJavaOptions=") for a in argv)
