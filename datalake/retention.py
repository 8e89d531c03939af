"""Retention: delete what is past its horizon, per partition date, and record it.

Horizons (setting DATALAKE_RETENTION_DAYS): bronze and its quarantine 90 days, silver
365 days, online features 90 days; training-set versions are kept indefinitely. A bronze
partition that a silver job has not consumed yet is kept whatever its age, and the
staging directories of runs that are no longer running are removed, as are monitoring
samples (DatasetStatus) older than DATALAKE_STATUS_HISTORY_DAYS.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.utils import timezone

from datalake.conf import app_settings
from datalake.layout import locate, staging_run
from datalake.models import DatasetStatus, ExportBatch, JobRun
from datalake.runs import run_exclusive
from datalake.storage import Storage, get_storage
from datalake.storage.base import ObjectInfo


@dataclass
class Doomed:
    """One directory retention removes, with what it holds."""

    prefix: str
    dataset: str
    reason: str
    files: int = 0
    bytes: int = 0


@dataclass
class RetentionPlan:
    """What a retention run deletes, and the expired bronze partitions it must keep."""

    deletions: list[Doomed] = field(default_factory=list)
    kept_unconsumed: list[str] = field(default_factory=list)

    @property
    def files(self) -> int:
        return sum(d.files for d in self.deletions)

    @property
    def bytes(self) -> int:
        return sum(d.bytes for d in self.deletions)


def horizon_of(dataset: str, horizons: dict[str, int]) -> int | None:
    """Return the days `dataset` keeps (None: forever), from the horizons by family."""
    family = dataset.rsplit(".", 1)[0]  # bronze, quarantine, silver, gold.features, ...
    if family == "quarantine":
        family = "bronze"
    return horizons.get(family)


def plan_retention(
    objects: Iterable[ObjectInfo],
    *,
    today: date,
    horizons: dict[str, int],
    unconsumed: dict[str, set[date]],
    live_runs: set[int],
) -> RetentionPlan:
    """Return the partitions and staging directories to delete from a lake listing.

    A partition dated D of a dataset keeping N days expires when D < today - N. A bronze
    partition whose date is in `unconsumed[<bronze dataset>]` is kept. A run's staging
    directory goes when the run is not in `live_runs`.
    """
    plan = RetentionPlan()
    found: dict[str, Doomed] = {}
    kept: set[str] = set()
    for info in objects:
        staging = staging_run(info.key)
        if staging is not None:
            prefix, run_id = staging
            if run_id not in live_runs:
                doomed = found.setdefault(
                    prefix, Doomed(prefix, "staging", f"run {run_id} is not running")
                )
                doomed.files += 1
                doomed.bytes += info.size
            continue
        located = locate(info.key)
        if located is None or located.partition.date is None:
            continue
        part = located.partition
        days = horizon_of(part.dataset, horizons)
        if days is None or part.date >= today - timedelta(days=days):
            continue
        if part.dataset.startswith("bronze.") and part.date in unconsumed.get(
            part.dataset.removeprefix("bronze."), set()
        ):
            kept.add(part.prefix)
            continue
        doomed = found.setdefault(
            part.prefix, Doomed(part.prefix, part.dataset, f"older than {days} days")
        )
        doomed.files += 1
        doomed.bytes += info.size
    plan.deletions = sorted(found.values(), key=lambda d: d.prefix)
    plan.kept_unconsumed = sorted(kept)
    return plan


def unconsumed_bronze_dates() -> dict[str, set[date]]:
    """Return, per bronze dataset, the dates of files some silver job has not read yet.

    A silver job's last successful run records (as cursor_end) the newest export batch it
    read; files of later batches, and of batches still being published, are unconsumed.
    """
    from datalake.silver import SILVER_JOBS

    readers: dict[str, list[str]] = {}
    for job in SILVER_JOBS.values():
        for dataset in job.incremental_from:
            readers.setdefault(dataset, []).append(job.name)
    result: dict[str, set[date]] = {}
    for dataset, jobs in readers.items():
        consumed = min(_consumed_batch(job) for job in jobs)
        batches = ExportBatch.objects.filter(dataset=dataset).exclude(
            status=ExportBatch.Status.COMMITTED, pk__lte=consumed
        )
        dates = result.setdefault(dataset, set())
        for files in batches.values_list("files", flat=True):
            for f in files:
                value = f.get("partition", {}).get("date")
                if value and value != "unknown":
                    dates.add(date.fromisoformat(value))
    return result


def _consumed_batch(job_name: str) -> int:
    runs = JobRun.objects.filter(job_name=job_name, status=JobRun.Status.SUCCEEDED)
    values = runs.exclude(cursor_end="").values_list("cursor_end", flat=True)
    return max((int(v) for v in values if v.isdigit()), default=0)


def live_run_ids() -> set[int]:
    """Return the ids of runs that may still write to their staging directory."""
    live = JobRun.objects.filter(status__in=[JobRun.Status.RUNNING, JobRun.Status.PENDING])
    return set(live.values_list("pk", flat=True))


def apply_retention(
    *,
    dry_run: bool = False,
    today: date | None = None,
    trigger: str = JobRun.Trigger.CLI,
    storage: Storage | None = None,
) -> JobRun:
    """Delete (or, in a dry run, only list) what retention removes; return the JobRun.

    The run's `summary` lists every partition deleted with its files and bytes;
    files_written/bytes_written stay 0 since retention writes nothing.
    """
    storage = storage or get_storage()
    today = today or timezone.now().date()
    horizons = dict(app_settings.RETENTION_DAYS)

    def body(run: JobRun) -> None:
        plan = plan_retention(
            storage.list(""),
            today=today,
            horizons=horizons,
            unconsumed=unconsumed_bronze_dates(),
            live_runs=live_run_ids() - {run.pk},
        )
        if not dry_run:
            for doomed in plan.deletions:
                doomed.files, doomed.bytes = storage.delete_prefix(doomed.prefix)
        leftovers = 0 if dry_run else storage.cleanup_incomplete()
        samples = DatasetStatus.objects.filter(
            checked_at__lt=timezone.now() - timedelta(days=app_settings.STATUS_HISTORY_DAYS)
        )
        old_samples = samples.count() if dry_run else samples.delete()[0]
        run.summary = {
            "dry_run": dry_run,
            "partitions": len([d for d in plan.deletions if d.dataset != "staging"]),
            "staging_dirs": len([d for d in plan.deletions if d.dataset == "staging"]),
            "files": plan.files,
            "bytes": plan.bytes,
            "incomplete_files": leftovers,
            "monitoring_samples": old_samples,
            "deleted": [vars(d) for d in plan.deletions],
            "kept_unconsumed": plan.kept_unconsumed,
        }

    # Two retention runs never overlap: the second is recorded SKIPPED.
    return run_exclusive(
        "ops.retention",
        body,
        layer=JobRun.Layer.OPS,
        trigger=trigger,
        parameters={"dry_run": dry_run, "today": today.isoformat(), "horizons": horizons},
    )
