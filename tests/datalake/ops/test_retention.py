"""Retention: exactly what is past its horizon goes, nothing still needed, dry run deletes
nothing."""

from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from datalake.layout import locate, staging_run
from datalake.models import DatasetStatus, ExportBatch, JobRun
from datalake.retention import apply_retention, plan_retention
from datalake.storage.base import ObjectInfo
from datalake.storage.local import LocalStorage

TODAY = date(2025, 6, 30)
HORIZONS = {"bronze": 90, "silver": 365, "gold.features": 90}


@pytest.mark.parametrize(
    ("key", "dataset", "prefix", "day", "name"),
    [
        ("bronze/events/date=2025-01-02/p.parquet", "bronze.events",
         "bronze/events/date=2025-01-02", date(2025, 1, 2), "p.parquet"),
        ("bronze/orders/client_id=3/date=2025-01-02/_metadata/p.json", "bronze.orders",
         "bronze/orders/client_id=3/date=2025-01-02", date(2025, 1, 2), "_metadata/p.json"),
        ("quarantine/events/date=unknown/q.parquet", "quarantine.events",
         "quarantine/events/date=unknown", None, "q.parquet"),
        ("silver/stop_executions_v2/client_id=1/date=2024-01-01/part-0.parquet",
         "silver.stop_executions_v2", "silver/stop_executions_v2/client_id=1/date=2024-01-01",
         date(2024, 1, 1), "part-0.parquet"),
        ("gold/features/stop_execution_features/client_id=2/date=2025-03-01/f.parquet",
         "gold.features.stop_execution_features",
         "gold/features/stop_execution_features/client_id=2/date=2025-03-01",
         date(2025, 3, 1), "f.parquet"),
        ("gold/training_sets/stop_outcome/v1.2.3/train/date=2024-01-01/t.parquet",
         "gold.training_sets.stop_outcome",
         "gold/training_sets/stop_outcome/v1.2.3/train/date=2024-01-01",
         date(2024, 1, 1), "t.parquet"),
        ("gold/training_sets/stop_outcome/v1.2.3/features.json",
         "gold.training_sets.stop_outcome", "gold/training_sets/stop_outcome/v1.2.3",
         None, "features.json"),
    ],
)  # fmt: skip
def test_locate(key: str, dataset: str, prefix: str, day: date | None, name: str) -> None:
    located = locate(key)
    assert located is not None
    assert (located.partition.dataset, located.partition.prefix) == (dataset, prefix)
    assert (located.partition.date, located.name) == (day, name)


@pytest.mark.parametrize(
    "key",
    ["bronze/events/p.parquet", "_staging/run-4/silver/x/date=2020-01-01/p.parquet",
     "gold/training_sets/stop_outcome/latest/train/date=2020-01-01/p.parquet",
     "bronze/events/.tmp-x/date=2020-01-01/p.parquet", "README"],
)  # fmt: skip
def test_locate_outside_datasets(key: str) -> None:
    assert locate(key) is None


def test_staging_run() -> None:
    assert staging_run("_staging/run-12/silver/x/a.parquet") == ("_staging/run-12", 12)
    assert staging_run("_staging/other/a") is None
    assert staging_run("silver/_staging/run-1/a") is None


def objects(*keys: str) -> list[ObjectInfo]:
    return [ObjectInfo(key, 10) for key in keys]


@pytest.mark.parametrize(
    ("key", "deleted"),
    [
        # bronze keeps 90 days: 2025-04-01 is today - 90, the last day kept
        ("bronze/events/date=2025-04-01/a.parquet", False),
        ("bronze/events/date=2025-03-31/a.parquet", True),
        ("bronze/orders/client_id=1/date=2025-03-31/_metadata/a.json", True),
        ("quarantine/events/date=2025-03-31/a.parquet", True),
        ("quarantine/events/date=unknown/a.parquet", False),
        # silver keeps 365 days (2024 was a leap year)
        ("silver/stop_executions/client_id=1/date=2024-06-30/a.parquet", False),
        ("silver/stop_executions/client_id=1/date=2024-06-29/a.parquet", True),
        ("gold/features/stop_execution_features/client_id=1/date=2025-03-31/a.parquet", True),
        ("gold/features/stop_execution_features/client_id=1/date=2025-04-01/a.parquet", False),
        # training-set versions are never touched
        ("gold/training_sets/stop_outcome/v1.0.0/train/date=2020-01-01/a.parquet", False),
        ("gold/training_sets/stop_outcome/v1.0.0/features.json", False),
        # bronze not yet consumed by silver is kept whatever its age
        ("bronze/events/date=2025-01-05/a.parquet", False),
        ("_staging/run-7/silver/x/a.parquet", True),  # dead run
        ("_staging/run-8/silver/x/a.parquet", False),  # running
        ("spark-logs/date=2000-01-01/x", False),
    ],
)
def test_plan_retention(key: str, deleted: bool) -> None:
    plan = plan_retention(
        objects(key),
        today=TODAY,
        horizons=HORIZONS,
        unconsumed={"events": {date(2025, 1, 5)}},
        live_runs={8},
    )
    assert bool(plan.deletions) is deleted
    if deleted:
        assert plan.deletions[0].files == 1
        assert plan.deletions[0].bytes == 10


def test_plan_groups_files_per_partition() -> None:
    plan = plan_retention(
        objects(
            "bronze/events/date=2025-01-01/a.parquet",
            "bronze/events/date=2025-01-01/_metadata/a.json",
            "bronze/events/date=2025-01-02/b.parquet",
        ),
        today=TODAY,
        horizons=HORIZONS,
        unconsumed={"events": {date(2025, 1, 2)}},
        live_runs=set(),
    )
    assert [(d.prefix, d.files, d.bytes) for d in plan.deletions] == [
        ("bronze/events/date=2025-01-01", 2, 20)
    ]
    assert plan.kept_unconsumed == ["bronze/events/date=2025-01-02"]


OLD_CONSUMED = "bronze/events/date=2025-01-01"
OLD_UNCONSUMED = "bronze/events/date=2025-01-02"
RECENT = "bronze/events/date=2025-06-29"
OLD_SILVER = "silver/stop_executions/client_id=1/date=2024-01-01"
NEW_SILVER = "silver/stop_executions/client_id=1/date=2025-06-01"
OLD_FEATURES = "gold/features/stop_execution_features/client_id=1/date=2025-01-01"
TRAINING = "gold/training_sets/stop_outcome/v1.0.0/train/date=2024-01-01"


@pytest.fixture
def lake(tmp_path) -> LocalStorage:
    storage = LocalStorage(tmp_path / "lake")
    for prefix in (OLD_CONSUMED, OLD_UNCONSUMED, RECENT, OLD_SILVER, NEW_SILVER,
                   OLD_FEATURES, TRAINING):  # fmt: skip
        storage.put_bytes(b"p" * 100, f"{prefix}/part-0.parquet")
        storage.put_bytes(b"m" * 10, f"{prefix}/_metadata/part-0.json")
    storage.put_bytes(b"{}", "gold/training_sets/stop_outcome/v1.0.0/features.json")
    # Export batches: #1 (2025-01-01) read by silver, #2 (2025-01-02) not yet.
    for number, day in ((1, "2025-01-01"), (2, "2025-01-02")):
        ExportBatch.objects.create(
            dataset="events", number=number, status=ExportBatch.Status.COMMITTED,
            watermark_before=0, watermark_after=number,
            files=[{"kind": "data", "key": f"bronze/events/date={day}/part-0.parquet",
                    "partition": {"date": day}}],
        )  # fmt: skip
    first = ExportBatch.objects.get(number=1)
    JobRun.objects.create(job_name="silver.stop_executions", layer="silver",
                          status=JobRun.Status.SUCCEEDED, cursor_end=str(first.pk))  # fmt: skip
    JobRun.objects.create(job_name="silver.operations", layer="silver",
                          status=JobRun.Status.SUCCEEDED, cursor_end=str(first.pk))  # fmt: skip
    check = JobRun.objects.create(job_name="ops.lake_checks", layer="ops", status="SUCCEEDED")
    for name, age in (("old", 91), ("recent", 89)):
        DatasetStatus.objects.create(run=check, dataset=name, layer="silver", health="OK",
                                     checked_at=timezone.now() - timedelta(days=age))  # fmt: skip
    dead = JobRun.objects.create(job_name="silver.x", layer="silver", status="FAILED")
    live = JobRun.objects.create(job_name="silver.y", layer="silver", status="RUNNING")
    storage.put_bytes(b"s" * 5, f"_staging/run-{dead.pk}/silver/x/part-0.parquet")
    storage.put_bytes(b"s" * 5, f"_staging/run-{live.pk}/silver/y/part-0.parquet")
    storage.live, storage.dead = live, dead
    return storage


def all_keys(storage: LocalStorage) -> set[str]:
    return {info.key for info in storage.list("")}


@pytest.mark.django_db
def test_dry_run_deletes_nothing_and_records_the_plan(lake: LocalStorage) -> None:
    before = all_keys(lake)
    run = apply_retention(dry_run=True, today=TODAY, storage=lake)
    assert all_keys(lake) == before
    assert DatasetStatus.objects.count() == 2
    run.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.job_name == "ops.retention"
    assert run.summary["dry_run"] is True
    assert [d["prefix"] for d in run.summary["deleted"]] == [
        f"_staging/run-{lake.dead.pk}", OLD_CONSUMED, OLD_FEATURES, OLD_SILVER,
    ]  # fmt: skip
    assert (run.summary["partitions"], run.summary["files"]) == (3, 7)


@pytest.mark.django_db
def test_retention_deletes_exactly_what_is_past_its_horizon(lake: LocalStorage) -> None:
    before = all_keys(lake)
    run = apply_retention(today=TODAY, storage=lake)
    gone = {k for k in before if k.startswith((OLD_CONSUMED, OLD_SILVER, OLD_FEATURES))}
    gone.add(f"_staging/run-{lake.dead.pk}/silver/x/part-0.parquet")
    assert all_keys(lake) == before - gone
    run.refresh_from_db()
    assert run.summary["kept_unconsumed"] == [OLD_UNCONSUMED]
    assert (run.summary["partitions"], run.summary["staging_dirs"]) == (3, 1)
    assert (run.summary["files"], run.summary["bytes"]) == (7, 3 * 110 + 5)
    assert not (lake.root / OLD_CONSUMED).exists()  # no empty directory left
    assert run.summary["monitoring_samples"] == 1
    assert list(DatasetStatus.objects.values_list("dataset", flat=True)) == ["recent"]


@pytest.mark.django_db
def test_command_and_task(lake: LocalStorage, settings) -> None:
    from io import StringIO

    settings.DATALAKE_URI = str(lake.root)
    out = StringIO()
    call_command("apply_retention", "--dry-run", "--today", "2025-06-30", stdout=out)
    assert f"would delete {OLD_SILVER} (2 files, 110 bytes): older than 365 days" in out.getvalue()
    assert f"kept {OLD_UNCONSUMED}" in out.getvalue()
    assert (lake.root / OLD_SILVER).exists()
    from datalake.tasks import apply_retention_task

    run = JobRun.objects.get(pk=apply_retention_task.apply(kwargs={"dry_run": True}).get())
    assert run.trigger == JobRun.Trigger.SCHEDULE
    assert run.summary["dry_run"] is True


@pytest.mark.django_db(transaction=True)
def test_bronze_verify_passes_after_retention(tmp_path, settings) -> None:
    from datalake.bronze.exporter import export_dataset
    from datalake.bronze.verify import verify_dataset
    from datalake.storage import get_storage
    from tests import factories

    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    op = factories.operation()
    factories.events(op, range(1, 4))  # late 2024: long past the 90 days
    factories.events(op, range(4, 6), start=timezone.now() - timedelta(hours=1))
    export_dataset("events")
    newest = ExportBatch.objects.latest("pk").pk
    for job in ("silver.stop_executions", "silver.operations"):
        JobRun.objects.create(job_name=job, layer="silver", status="SUCCEEDED",
                              cursor_end=str(newest))  # fmt: skip
    storage = get_storage()
    run = apply_retention(storage=storage)
    assert run.summary["partitions"] >= 1
    report = verify_dataset("events", storage)
    assert report.problems == []
    assert report.rows == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("job", ["retention", "checks"])
def test_a_second_run_while_one_holds_the_lock_is_skipped(lake: LocalStorage, job: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from datalake.locks import exclusive
    from datalake.monitoring import check_lake

    def start():
        if job == "retention":
            return apply_retention(today=TODAY, storage=lake)
        return check_lake(storage=lake)[0]

    before = all_keys(lake)
    lock = {"retention": "job.ops.retention", "checks": "job.ops.lake_checks"}[job]
    with exclusive(lock), ThreadPoolExecutor(1) as pool:
        # Another thread has its own database connection, as another worker would.
        skipped = pool.submit(start).result()
    assert skipped.status == JobRun.Status.SKIPPED
    assert all_keys(lake) == before
    assert start().status == JobRun.Status.SUCCEEDED
