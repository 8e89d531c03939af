"""Celery tasks: thin shells over the datalake services."""

from dataclasses import asdict
from datetime import UTC, datetime

from celery import shared_task
from django.db import OperationalError

from datalake.bronze.exporter import export_dataset
from datalake.bronze.schemas import DATASETS
from datalake.models import JobRun
from datalake.runs import run_exclusive, tracked_run
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


# --- Scheduled chains (datalake/schedules.py): one run per schedule, children per dataset ---


class ChainFailed(Exception):
    """One or more steps of a scheduled chain failed; the others still ran."""


@shared_task(name="datalake.bronze_ingest", acks_late=True)
def bronze_ingest() -> int:
    """Export every bronze dataset (the hourly `bronze-ingest`); return the parent run id.

    Each dataset is a child run with its own lock; a failing dataset does not stop the
    others, and fails the parent (so the schedule counts the failure).
    """

    def body(run: JobRun) -> None:
        failures = []
        for name in DATASETS:
            parameters = {"dataset": name}
            try:
                result = export_dataset(
                    name, trigger=JobRun.Trigger.SCHEDULE, parameters=parameters, parent=run
                )
            except Exception as exc:
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            run.rows_out += result.rows
            run.files_written += result.files
            run.bytes_written += result.bytes
        if failures:
            raise ChainFailed("; ".join(failures))

    return run_exclusive(
        "bronze.ingest", body, layer=JobRun.Layer.BRONZE, trigger=JobRun.Trigger.SCHEDULE
    ).pk


@shared_task(name="datalake.silver_transform", acks_late=True)
def silver_transform(full: bool = False) -> int:
    """Build every silver dataset in dependency order (the daily `silver-transform`) from
    the bronze published since each one's last run; return the parent run id."""
    from datalake.silver import SILVER_JOBS, run_silver

    def body(run: JobRun) -> None:
        failures = []
        for name in SILVER_JOBS:
            try:
                child = run_silver(name, trigger=JobRun.Trigger.SCHEDULE, full=full, parent=run)
            except Exception as exc:
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            run.rows_in += child.rows_in
            run.rows_out += child.rows_out
        if failures:
            raise ChainFailed("; ".join(failures))

    return run_exclusive(
        "silver.transform",
        body,
        layer=JobRun.Layer.SILVER,
        trigger=JobRun.Trigger.SCHEDULE,
        parameters={"full": full},
    ).pk


def _build(name: str, timeout: float | None, **options) -> int:
    from datetime import date, datetime

    from datalake.gold import BuildOptions, build_training_set

    # Task arguments travel as JSON: instants and dates arrive as ISO strings.
    if isinstance(options.get("as_of"), str):
        options["as_of"] = datetime.fromisoformat(options["as_of"].replace("Z", "+00:00"))
    if isinstance(options.get("test_from"), str):
        options["test_from"] = date.fromisoformat(options["test_from"])
    run = build_training_set(
        name, BuildOptions(**options), trigger=JobRun.Trigger.SCHEDULE, timeout=timeout
    )
    return run.pk


@shared_task(name="datalake.build_stop_outcome", acks_late=True)
def build_stop_outcome(timeout: float | None = None, **options) -> int:
    """Build the next version of gold.training_sets.stop_outcome (weekly); return the run id.

    ``options`` are BuildOptions fields (version, test_fraction, embargo ...).
    """
    return _build("stop_outcome", timeout, **options)


@shared_task(name="datalake.build_slippage_prediction", acks_late=True)
def build_slippage_prediction(timeout: float | None = None, **options) -> int:
    """Build the next version of gold.training_sets.slippage_prediction; return the run id."""
    return _build("slippage_prediction", timeout, **options)


@shared_task(name="datalake.apply_retention", acks_late=True)
def apply_retention_task(dry_run: bool = False) -> int:
    """Apply retention (scheduled daily); return the run id."""
    from datalake.retention import apply_retention

    return apply_retention(dry_run=dry_run, trigger=JobRun.Trigger.SCHEDULE).pk


@shared_task(name="datalake.lake_checks", acks_late=True)
def lake_checks() -> dict:
    """Take a monitoring sample of the lake (scheduled); return its run id, breaches and
    warnings."""
    from datalake.monitoring import check_lake

    run, _ = check_lake(trigger=JobRun.Trigger.SCHEDULE)
    summary = run.summary
    return {"run": run.pk, "breached": summary.get("breached", []),
            "warnings": summary.get("warnings", [])}  # fmt: skip


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


@shared_task(name="datalake.refresh_features", acks_late=True)
def refresh_features(feature_set: str = "stop_execution_features", timeout: float | None = None):
    """Refresh the online features and switch the cache to them; return the run id."""
    from datalake.feature_refresh import refresh_features as refresh

    return refresh(feature_set, trigger=JobRun.Trigger.SCHEDULE, timeout=timeout).pk
