"""End to end: demo data -> export_bronze -> silver via spark-submit, compared with an
independent computation of the same facts from the source tables."""

import io
import json
import os
import threading
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from api.models import StopEvent
from datalake.models import ExportBatch, JobRun, QualityCheck
from datalake.silver import run_silver
from datalake.spark.runner import SparkJobFailed, run_job
from datalake.storage import get_storage
from tests.lake_helpers import read_lake, visible_parquet_keys

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

STATUS_OF = {
    "STOP_TRIGGERED": "PENDING",
    "EXECUTION_SUBMITTED": "SUBMITTED",
    "EXECUTED": "EXECUTED",
    "FAILED": "FAILED",
    "BLOCKED": "BLOCKED",
    "KILL_SWITCH": "BLOCKED",
    "CIRCUIT_BREAKER": "BLOCKED",
    "STALE_PRICE": "BLOCKED",
}


def expected_executions() -> dict[str, dict]:
    """Replay the source events in plain Python: the independent computation."""
    events = defaultdict(list)
    for event in StopEvent.objects.order_by("occurred_at", "event_seq"):
        events[event.execution_token].append(event)
    out = {}
    for token, evs in events.items():
        status = None
        for event in evs:
            status = STATUS_OF.get(event.event_type, status)
        executed = [e for e in evs if e.event_type == "EXECUTED"]
        out[token] = {
            "client_id": evs[0].client_id,
            "date": evs[0].occurred_at.date().isoformat(),
            "status": status,
            "triggered_at": next(e.occurred_at for e in evs if e.event_type == "STOP_TRIGGERED"),
            "executed_at": executed[-1].occurred_at if executed else None,
            "fill_price": executed[-1].fill_price if executed else None,
            "retry_count": max(e.retry_count for e in evs),
            "event_count": len(evs),
        }
    return out


def silver_executions(storage) -> dict[str, dict]:
    table = read_lake(storage, "silver/stop_executions/")
    rows = {}
    for row in table.to_pylist():
        rows[row["execution_token"]] = {
            "client_id": row["client_id"],
            "date": str(row["date"]),
            "status": row["status"],
            "triggered_at": row["triggered_at"],
            "executed_at": row["executed_at"],
            "fill_price": row["fill_price"],
            "retry_count": row["retry_count"],
            "event_count": row["event_count"],
        }
    assert len(rows) == table.num_rows, "execution_id is not unique"
    return rows


@pytest.fixture(scope="session")
def class_archive_dir(tmp_path_factory):
    """One driver class-data archive for the session's spark-submits (the first writes it)."""
    return tmp_path_factory.mktemp("spark-classes")


@pytest.fixture
def spark_lake(tmp_path, settings, class_archive_dir):
    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    settings.DATALAKE_SPARK_CLASS_ARCHIVE_DIR = str(class_archive_dir)
    settings.DATALAKE_SPARK_MASTER = "local[2]"
    settings.DATALAKE_SPARK_DRIVER_MEMORY = "1g"
    # Tiny inputs: few shuffle partitions and a JIT that starts fast (as the unit-test
    # session has); passed the way production passes extra conf.
    settings.DATALAKE_SPARK_CONF = {
        "spark.sql.shuffle.partitions": "4",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }
    return get_storage()


@pytest.fixture
def demo_lake(spark_lake):
    call_command(
        "seed_demo",
        "--start-date",
        "2024-12-20",
        "--events",
        "3000",
        "--days",
        "3",
        "--no-progress",
        stdout=io.StringIO(),
    )
    call_command("export_bronze", "--no-progress", stdout=io.StringIO())
    return spark_lake


def silver_rows(storage, dataset: str, key: str) -> dict:
    """Return the rows of a silver dataset by `key`, without created_at (build time)."""
    table = read_lake(storage, f"silver/{dataset}/")
    rows = {row[key]: row for row in table.to_pylist()}
    assert len(rows) == table.num_rows, f"{key} is not unique in silver.{dataset}"
    for row in rows.values():
        row.pop("created_at")
    return rows


def test_silver_matches_an_independent_replay_and_updates_daily_as_a_rebuild_would(
    demo_lake, tmp_path
):
    run = run_silver("silver.stop_executions")
    assert run.status == JobRun.Status.SUCCEEDED, run.error
    assert run.spark_app_id.startswith("local-")
    assert run.rows_out == len(expected_executions())
    assert silver_executions(demo_lake) == expected_executions()
    # What it wrote: the published files and their bytes; what it consumed: the batches.
    published = visible_parquet_keys(demo_lake, "silver/stop_executions/")
    assert run.files_written == len(published) > 0
    assert run.bytes_written == sum(demo_lake.stat(k).size for k in published)
    newest = ExportBatch.objects.filter(dataset="events").latest("pk").pk
    assert (run.cursor_start, run.cursor_end) == ("", str(newest))
    assert run.cursor_summary == f"all export batches, up to #{newest}"
    checks = QualityCheck.objects.filter(run=run)
    assert checks.exists()
    assert all(c.passed for c in checks)
    derived = ("silver.operations", "silver.portfolio_snapshots")
    for job in derived:
        assert run_silver(job).status == JobRun.Status.SUCCEEDED
    keys = [
        key
        for dataset in ("stop_executions", "operations", "portfolio_snapshots")
        for key in visible_parquet_keys(demo_lake, f"silver/{dataset}/")
    ]
    before = {k: (tmp_path / "lake" / k).stat().st_mtime_ns for k in keys}

    # A new day arrives: only the partitions it touches are recomputed.
    call_command("seed_demo", "--events", "600", "--days", "1", "--start-date", "2024-12-23",
                 "--no-progress", stdout=io.StringIO())  # fmt: skip
    call_command("export_bronze", "--no-progress", stdout=io.StringIO())
    for job in ("silver.stop_executions", *derived):
        daily = run_silver(job)
        assert daily.status == JobRun.Status.SUCCEEDED, (job, daily.error)
        assert "2024-12-23" in daily.parameters["dates"], job
        assert int(daily.cursor_end) > int(daily.cursor_start) > 0, job
        # stop_executions is given the exact new files (the batches' manifests).
        assert ("new_files" in daily.parameters) == (job == "silver.stop_executions")
    assert silver_executions(demo_lake) == expected_executions()
    untouched = [k for k in before if "date=2024-12-20" in k]
    assert {k.split("/")[1] for k in untouched} == {
        "stop_executions",
        "operations",
        "portfolio_snapshots",
    }
    for key in untouched:
        assert (tmp_path / "lake" / key).stat().st_mtime_ns == before[key]

    # What the daily runs kept is what a full rebuild computes.
    incremental = {
        "operations": silver_rows(demo_lake, "operations", "operation_id"),
        "portfolio_snapshots": silver_rows(demo_lake, "portfolio_snapshots", "snapshot_id"),
    }
    for job in derived:
        assert run_silver(job, full=True).status == JobRun.Status.SUCCEEDED
    assert silver_rows(demo_lake, "operations", "operation_id") == incremental["operations"]
    assert (
        silver_rows(demo_lake, "portfolio_snapshots", "snapshot_id")
        == incremental["portfolio_snapshots"]
    )

    for job in ("silver.stop_executions", *derived):
        assert run_silver(job).status == JobRun.Status.SKIPPED


def test_a_job_that_raises_is_a_failed_run_with_a_readable_error(spark_lake):
    run = JobRun.objects.start("diagnostics.fail", layer=JobRun.Layer.OPS)
    outcome = run_job("diagnostics.fail", [], run=run)
    run.refresh_from_db()
    assert not outcome.ok
    assert run.status == JobRun.Status.FAILED
    assert "deliberate failure" in run.error
    assert run.finished_at is not None
    assert os.path.exists(run.log_file)


def test_a_job_that_runs_too_long_is_killed_and_failed(spark_lake):
    run = JobRun.objects.start("diagnostics.sleep", layer=JobRun.Layer.OPS)
    started = time.monotonic()
    outcome = run_job("diagnostics.sleep", ["--seconds", "300"], run=run, timeout=25)
    run.refresh_from_db()
    assert outcome.timed_out
    assert time.monotonic() - started < 120
    assert run.status == JobRun.Status.FAILED
    assert run.error.startswith("timed out after 25 s")


def test_a_cancelled_job_is_killed_and_stays_cancelled(spark_lake):
    from django.db import connection

    from datalake import operations

    run = JobRun.objects.start("diagnostics.sleep", layer=JobRun.Layer.OPS)
    outcome = {}

    def submit() -> None:
        try:
            mine = JobRun.objects.get(pk=run.pk)
            outcome["value"] = run_job("diagnostics.sleep", ["--seconds", "300"], run=mine,
                                       timeout=240)  # fmt: skip
        finally:
            connection.close()

    thread = threading.Thread(target=submit)
    thread.start()
    deadline = time.monotonic() + 60
    while (group := JobRun.objects.get(pk=run.pk).process_group) is None:
        assert time.monotonic() < deadline, "spark-submit never recorded its process group"
        time.sleep(0.1)
    assert operations.cancel(run, by="ops") == [f"killed process group {group}"]
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert not outcome["value"].ok
    run.refresh_from_db()
    assert run.status == JobRun.Status.CANCELLED
    assert run.error == "cancelled by ops"
    assert live_members(group) == []


def live_members(group: int) -> list[int]:
    """Return the pids of the group's processes that still run (zombies excluded: in a
    container, nobody may reap the killed JVM's orphans)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def test_a_failing_quality_gate_fails_the_run_and_publishes_nothing(demo_lake):
    executed = StopEvent.objects.filter(event_type="EXECUTED").first()
    StopEvent.objects.create(
        event_id=uuid.uuid4(), event_seq=StopEvent.objects.order_by("-event_seq")[0].event_seq + 1,
        occurred_at=executed.occurred_at + timedelta(seconds=1), operation_id=executed.operation_id,
        client_id=executed.client_id, symbol=executed.symbol, event_type="EXECUTED",
        execution_token=executed.execution_token, fill_price=executed.fill_price,
        slippage_pct=Decimal("80.0000"), source="ws", quantity=executed.quantity,
    )  # fmt: skip
    call_command("export_bronze", "--no-progress", stdout=io.StringIO())
    with pytest.raises(SparkJobFailed, match="critical quality checks failed"):
        run_silver("silver.stop_executions")
    run = JobRun.objects.get(job_name="silver.stop_executions")
    assert run.status == JobRun.Status.FAILED
    failed = QualityCheck.objects.filter(run=run, passed=False)
    assert failed.exists()
    assert not visible_parquet_keys(demo_lake, "silver/stop_executions/")


def test_the_first_run_writes_the_driver_class_archive_and_later_runs_map_it(
    demo_lake, settings, tmp_path
):
    settings.DATALAKE_SPARK_CLASS_ARCHIVE_DIR = str(tmp_path / "classes")
    assert run_silver("silver.stop_executions").status == JobRun.Status.SUCCEEDED
    (archive,) = (tmp_path / "classes").iterdir()  # published whole, no temporary left
    assert archive.name.startswith("driver-")
    assert archive.stat().st_size > 1_000_000
    written = archive.stat().st_mtime_ns

    # With -Xshare:on a JVM that cannot map the archive refuses to start, so a success
    # proves the driver used it.
    options = settings.DATALAKE_SPARK_CONF["spark.driver.extraJavaOptions"]
    settings.DATALAKE_SPARK_CONF = {
        **settings.DATALAKE_SPARK_CONF,
        "spark.driver.extraJavaOptions": f"{options} -Xshare:on",
    }
    assert run_silver("silver.stop_executions", full=True).status == JobRun.Status.SUCCEEDED
    assert archive.stat().st_mtime_ns == written

    # ... and an archive it cannot map does fail that JVM.
    archive.write_bytes(b"not an archive")
    with pytest.raises(SparkJobFailed):
        run_silver("silver.stop_executions", full=True)


def test_seed_sample_queries_run_through_lake_sql(demo_lake):
    assert run_silver("silver.stop_executions").status == JobRun.Status.SUCCEEDED
    out = io.StringIO()
    call_command("lake_sql", "-f", "datalake/sql/seed_samples.sql", stdout=out)
    # stdout carries the results only: per statement its title, a table, a row count.
    blocks = out.getvalue().rstrip("\n").split("\n\n")
    assert [block.splitlines()[0] for block in blocks] == [
        "-- Success rate by client",
        "-- Average slippage by symbol",
        "-- Bronze layer: Row count over time",
        "-- Silver layer: Null percentage",
        "-- Bronze freshness (max lag)",
        "-- Silver freshness (job completion)",
    ]
    assert all(block.splitlines()[-1].endswith(" rows)") or block.endswith("(1 row)")
               for block in blocks)  # fmt: skip
    (seed_run,) = JobRun.objects.filter(job_name="lake_sql")
    assert seed_run.status == JobRun.Status.SUCCEEDED
    assert seed_run.spark_app_id.startswith("local-")

    out = io.StringIO()
    success_rate = Path("datalake/sql/seed_samples.sql").read_text().split(";")[0]
    call_command("lake_sql", success_rate, "--format", "json", stdout=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]  # JSON lines only
    by_client = defaultdict(lambda: [0, 0])
    for execution in expected_executions().values():
        by_client[execution["client_id"]][0] += 1
        by_client[execution["client_id"]][1] += execution["status"] == "EXECUTED"
    assert {r["client_id"]: [r["total_executions"], r["successful"]] for r in rows} == dict(
        by_client
    )
    assert all(isinstance(r["success_rate_pct"], str) for r in rows)  # decimals as strings

    with pytest.raises(CommandError, match=r"^\[TABLE_OR_VIEW_NOT_FOUND\]"):
        call_command("lake_sql", "SELECT * FROM silver.nope", stdout=io.StringIO())
    failed = JobRun.objects.get(job_name="lake_sql", status=JobRun.Status.FAILED)
    assert failed.error.startswith("[TABLE_OR_VIEW_NOT_FOUND] The table or view `silver`.`nope`")


def test_a_silver_job_runs_unchanged_on_a_standalone_cluster(
    demo_lake, standalone_master, settings
):
    settings.DATALAKE_SPARK_MASTER = standalone_master
    settings.DATALAKE_SPARK_EXECUTOR_MEMORY = "512m"
    run = run_silver("silver.stop_executions")
    assert run.status == JobRun.Status.SUCCEEDED, run.error
    assert run.spark_app_id.startswith("app-")  # a standalone application, not local-...
    assert silver_executions(demo_lake) == expected_executions()


def test_backfill_writes_a_separate_v2_dataset_with_one_child_run_per_date(demo_lake):
    out = io.StringIO()
    # Input only from the 20th: the 19 dates before it cost no spark-submit.
    call_command("backfill", "--start-date", "2024-12-01", "--end-date", "2024-12-21",
                 "--input", "bronze.events", "--output", "silver.stop_executions_v2",
                 stdout=out)  # fmt: skip
    parent = JobRun.objects.get(job_name="backfill")
    assert parent.status == JobRun.Status.SUCCEEDED, parent.error
    skipped, *children = parent.children.order_by("interval_start")
    assert skipped.status == JobRun.Status.SKIPPED
    assert skipped.parameters == {"start_date": "2024-12-01", "end_date": "2024-12-19",
                                  "dates": 19}  # fmt: skip
    assert "2024-12-01..2024-12-19  SKIPPED" in out.getvalue()
    assert [c.parameters["date"] for c in children] == ["2024-12-20", "2024-12-21"]
    assert all(c.status == JobRun.Status.SUCCEEDED for c in children)
    assert parent.parameters["spark_submits"] == 1
    assert len({c.log_file for c in children}) == 1  # both dates in one spark-submit
    expected = {t: e for t, e in expected_executions().items() if e["date"] <= "2024-12-21"}
    assert sum(c.rows_out for c in children) == parent.rows_out == len(expected)
    # Files and bytes: what was published, per date and in all.
    for child in children:
        day = child.parameters["date"]
        keys = [k for k in visible_parquet_keys(demo_lake, "silver/stop_executions_v2/")
                if f"/date={day}/" in k]  # fmt: skip
        assert child.files_written == len(keys) > 0
        assert child.bytes_written == sum(demo_lake.stat(k).size for k in keys)
    assert parent.bytes_written == sum(c.bytes_written for c in children) > 0
    assert parent.files_written == sum(c.files_written for c in children)
    assert "2024-12-20  SUCCEEDED" in out.getvalue()
    v2 = read_lake(demo_lake, "silver/stop_executions_v2/")
    assert sorted(v2["execution_token"].to_pylist()) == sorted(expected)
    assert not visible_parquet_keys(demo_lake, "silver/stop_executions/")  # the original
    with pytest.raises(CommandError, match="already has"):
        call_command("backfill", "--start-date", "2024-12-21", "--end-date", "2024-12-21",
                     "--input", "bronze.events",
                     "--output", "silver.stop_executions_v2")  # fmt: skip
