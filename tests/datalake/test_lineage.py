"""Lineage: each run records the runs whose outputs it consumed; the chain follows the data."""

import pytest

from datalake.lineage import published_since_last, record_consumed
from datalake.models import ExportBatch, JobRun
from datalake.silver import new_bronze, run_silver
from datalake.spark.runner import SparkJobFailed

pytestmark = pytest.mark.django_db


def export_run(dataset: str, number: int, dates: list[str]) -> JobRun:
    run = JobRun.objects.start("bronze.export", layer="bronze", dataset=dataset)
    files = [{"kind": "data", "partition": {"date": d}, "key": f"{dataset}/{d}/{number}"}
             for d in dates]  # fmt: skip
    ExportBatch.objects.create(
        dataset=dataset, number=number, status=ExportBatch.Status.COMMITTED, files=files,
        watermark_before=0, watermark_after=0, run=run,
    )  # fmt: skip
    run.succeed()
    return run


def test_new_bronze_names_the_export_runs_that_published_it():
    first = export_run("events", 1, ["2024-12-20"])
    second = export_run("events", 2, ["2024-12-21"])
    export_run("portfolio", 1, ["2024-12-21"])
    assert new_bronze(("events",), 0).runs == [first.pk, second.pk]
    batch = ExportBatch.objects.get(run=first)
    assert new_bronze(("events",), batch.pk).runs == [second.pk]


@pytest.fixture
def failing_submit(tmp_path, settings):
    script = tmp_path / "spark-submit"
    script.write_text("#!/bin/sh\nexit 1\n")
    script.chmod(0o755)
    settings.DATALAKE_SPARK_SUBMIT = str(script)
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_SPARK_CLASS_ARCHIVE_DIR = "off"


def test_silver_runs_record_the_runs_they_consumed(failing_submit):
    old = export_run("events", 1, ["2024-12-20"])
    last = JobRun.objects.start(
        "silver.stop_executions",
        layer="silver",
        cursor_end=str(ExportBatch.objects.get(run=old).pk),
    )
    last.succeed()
    new_events = export_run("events", 2, ["2024-12-21"])
    orders = export_run("orders", 1, ["2024-12-21"])

    with pytest.raises(SparkJobFailed):
        run_silver("silver.stop_executions")
    run = JobRun.objects.filter(job_name="silver.stop_executions").latest("pk")
    assert list(run.consumed.values_list("pk", flat=True)) == [new_events.pk]  # not `old`
    assert list(new_events.consumers.all()) == [run]

    with pytest.raises(SparkJobFailed):
        run_silver("silver.operations")  # first run: every orders and events batch
    ops = JobRun.objects.filter(job_name="silver.operations").latest("pk")
    consumed = set(ops.consumed.values_list("pk", flat=True))
    assert consumed == {old.pk, new_events.pk, orders.pk, last.pk}  # + silver.stop_executions


def silver(job: str, status=JobRun.Status.SUCCEEDED) -> JobRun:
    run = JobRun.objects.start(job, layer="silver")
    if status != JobRun.Status.RUNNING:
        run.finish(status)
    return run


def test_gold_reads_the_silver_published_since_its_last_build():
    producers = ("silver.stop_executions", "silver.operations")
    a = silver("silver.stop_executions")
    silver("silver.operations", JobRun.Status.FAILED)
    b = silver("silver.operations")
    silver("silver.portfolio_snapshots")
    assert published_since_last("gold.stop_outcome", producers) == [a, b]

    build = JobRun.objects.start("gold.stop_outcome", layer="gold")
    record_consumed(build, [a, b])
    build.succeed()
    assert published_since_last("gold.stop_outcome", producers) == []

    in_flight = silver("silver.stop_executions", JobRun.Status.RUNNING)
    c = silver("silver.operations")
    # c finished, but an older run is still in flight: wait for it, never skip it.
    assert published_since_last("gold.stop_outcome", producers) == []
    in_flight.succeed()
    assert published_since_last("gold.stop_outcome", producers) == [in_flight, c]
    assert list(a.consumers.all()) == [build]

    failed = JobRun.objects.start("gold.stop_outcome", layer="gold")
    record_consumed(failed, [in_flight])
    failed.fail("boom")  # a failed build moves nothing
    assert published_since_last("gold.stop_outcome", producers) == [in_flight, c]


def test_admin_shows_lineage_both_ways_and_the_managed_schedules(admin_client):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from datalake.models import ManagedSchedule

    bronze = export_run("events", 1, ["2024-12-20"])
    silver_run = JobRun.objects.start("silver.stop_executions", layer="silver")
    record_consumed(silver_run, [bronze])
    silver_run.succeed()

    page = admin_client.get(f"/admin/datalake/jobrun/{silver_run.pk}/change/").content.decode()
    assert f'href="/admin/datalake/jobrun/{bronze.pk}/change/"' in page
    page = admin_client.get(f"/admin/datalake/jobrun/{bronze.pk}/change/").content.decode()
    assert f'href="/admin/datalake/jobrun/{silver_run.pk}/change/"' in page

    task = PeriodicTask.objects.create(
        name="bronze-ingest", task="datalake.bronze_ingest", enabled=False,
        interval=IntervalSchedule.objects.create(every=1, period="hours"),
    )  # fmt: skip
    ManagedSchedule.objects.create(
        periodic_task=task, fingerprint="-", pause_reason="Paused automatically after 3"
    )
    page = admin_client.get("/admin/datalake/managedschedule/").content.decode()
    assert "bronze-ingest" in page
    assert "Paused automatically after 3" in page
