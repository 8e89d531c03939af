"""Celery tasks: thin shells over the datalake services."""

from dataclasses import asdict
from datetime import UTC, datetime

from celery import shared_task
from django.db import OperationalError

from datalake.bronze.exporter import export_dataset
from datalake.models import JobRun
from datalake.runs import tracked_run
from datalake.storage.base import StorageUnavailable


@shared_task(name="datalake.ping")
def ping(message: str = "pong") -> int:
    """Record a trivial ops run and return its id: proves worker, broker and database."""
    with tracked_run(
        "ops.ping",
        layer=JobRun.Layer.OPS,
        trigger=JobRun.Trigger.SCHEDULE,
        parameters={"message": message},
    ) as run:
        run.rows_out = 1
    return run.pk


@shared_task(
    name="datalake.export_bronze",
    acks_late=True,
    autoretry_for=(StorageUnavailable, OperationalError),
    retry_backoff=30,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=5,
)
def export_bronze(dataset: str, batch_size: int | None = None, until: str | None = None) -> dict:
    """Export one bronze dataset (scheduled hourly); a concurrent run records SKIPPED.

    Late acknowledgement plus the exporter's roll-forward recovery make a redelivered or
    retried task safe: it completes what the lost attempt started, never duplicates it.
    `until` (ISO date-time, UTC without offset) stops there, as a re-run of an export
    that had --until does.
    """
    options = {}
    if until:
        moment = datetime.fromisoformat(until)
        options["until"] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    result = export_dataset(
        dataset,
        trigger=JobRun.Trigger.SCHEDULE,
        parameters={"dataset": dataset, "batch_size": batch_size, "until": until},
        batch_size=batch_size,
        **options,
    )
    return asdict(result)


@shared_task(name="datalake.run_silver", acks_late=True)
def run_silver_job(job: str, full: bool = False, timeout: float | None = None) -> int:
    """Build one silver dataset with spark-submit (scheduled daily); return the run id."""
    from datalake.silver import run_silver

    return run_silver(job, trigger=JobRun.Trigger.SCHEDULE, full=full, timeout=timeout).pk


@shared_task(name="datalake.apply_retention", acks_late=True)
def apply_retention_task(dry_run: bool = False) -> int:
    """Apply retention (scheduled daily); return the run id."""
    from datalake.retention import apply_retention

    return apply_retention(dry_run=dry_run, trigger=JobRun.Trigger.SCHEDULE).pk


@shared_task(name="datalake.lake_checks", acks_late=True)
def lake_checks() -> dict:
    """Take a monitoring sample of the lake (scheduled); return its run id and breaches."""
    from datalake.monitoring import check_lake

    run, _ = check_lake(trigger=JobRun.Trigger.SCHEDULE)
    return {"run": run.pk, "breached": run.summary["breached"]}


@shared_task(name="datalake.backfill", acks_late=True)
def backfill_task(
    start_date: str,
    end_date: str,
    input: str,  # the name the backfill run records
    output: str,
    overwrite: bool,
    chunk_days: int = 7,
) -> int:
    """Recompute a silver output over a date range (a re-run from admin); return the run id."""
    from datetime import date

    from datalake.silver import backfill

    return backfill(
        start=date.fromisoformat(start_date),
        end=date.fromisoformat(end_date),
        input_name=input,
        output=output,
        overwrite=overwrite,
        chunk_days=chunk_days,
        trigger=JobRun.Trigger.ADMIN,
    ).pk
