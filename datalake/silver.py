"""Silver: which Spark job builds which dataset from what, and running it tracked."""

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import Min

from datalake.conf import app_settings
from datalake.locks import ConcurrentRun, exclusive
from datalake.models import ExportBatch, JobRun
from datalake.spark.runner import SparkJobFailed, run_job


@dataclass(frozen=True)
class SilverJob:
    """A silver dataset, the Spark job that builds it, and its inputs."""

    name: str  # e.g. silver.stop_executions (also the spark_jobs job name)
    inputs: tuple[str, ...]
    incremental_from: tuple[str, ...] = ()  # bronze datasets whose new dates drive a daily run
    narrows_by_files: bool = False  # the job takes --new-files to recompute less than the dates


SILVER_JOBS = {
    job.name: job
    for job in (
        SilverJob(
            "silver.stop_executions",
            ("bronze.events",),
            incremental_from=("events",),
            narrows_by_files=True,
        ),
        # Orders make operations; a stop event on an operation can change stop_fired.
        SilverJob(
            "silver.operations",
            ("bronze.orders", "silver.stop_executions"),
            incremental_from=("orders", "events"),
        ),
        SilverJob(
            "silver.portfolio_snapshots", ("bronze.portfolio",), incremental_from=("portfolio",)
        ),
    )
}
#: Above this many new bronze files a daily run passes only their dates (a command-line
#: argument is limited to 128 KiB); the job then recomputes every execution of those dates.
MAX_LISTED_FILES = 1000
OUTPUT_NAME = re.compile(r"^(?P<base>silver\.[a-z_]+?)(?P<suffix>_v\d+|_[a-z0-9]+)?$")


class UnknownDataset(ValueError):
    """A dataset or job name that the lake does not know."""


def resolve_output(output: str) -> SilverJob:
    """Return the job that builds `output`, which may carry a suffix (`..._v2`)."""
    if output in SILVER_JOBS:
        return SILVER_JOBS[output]
    for name, job in SILVER_JOBS.items():
        rest = output.removeprefix(name)
        if rest != output and re.fullmatch(r"_[a-z0-9]+", rest):
            return job
    known = ", ".join(sorted(SILVER_JOBS))
    raise UnknownDataset(f"unknown output {output!r}; known: {known} (optionally with _v2...)")


@dataclass(frozen=True)
class NewBronze:
    """The bronze files committed after a batch id, and the id to resume after next time."""

    dates: list[str]
    keys: list[str]  # lake keys of the data files
    newest: int
    runs: list[int] = field(default_factory=list)  # export runs that published them


def new_bronze(datasets: tuple[str, ...], after_batch: int) -> NewBronze:
    """Return the data files of `datasets` committed after batch id `after_batch` (the
    bronze manifests, as recorded on the export batches), with their dates.

    Batches are read only up to the oldest one still PLANNED: a batch that commits late
    (its export crashed and the next run completes it) must not fall behind the cursor.
    """
    batches = ExportBatch.objects.filter(dataset__in=datasets, pk__gt=after_batch)
    in_flight = batches.filter(status=ExportBatch.Status.PLANNED).aggregate(Min("pk"))["pk__min"]
    committed = batches.filter(status=ExportBatch.Status.COMMITTED)
    if in_flight is not None:
        committed = committed.filter(pk__lt=in_flight)
    dates: set[str] = set()
    keys: set[str] = set()
    runs: set[int] = set()
    newest = after_batch
    for pk, files, run_id in committed.values_list("pk", "files", "run_id"):
        newest = max(newest, pk)
        if run_id is not None:
            runs.add(run_id)
        data = [f for f in files if f["kind"] == "data"]
        dates.update(f["partition"]["date"] for f in data)
        keys.update(f["key"] for f in data)
    return NewBronze(sorted(dates), sorted(keys), newest, sorted(runs))


def run_silver(
    job_name: str,
    *,
    trigger: str = JobRun.Trigger.CLI,
    full: bool = False,
    timeout: float | None = None,
    parent: JobRun | None = None,
) -> JobRun:
    """Build one silver dataset; a daily run recomputes only what new bronze files affect.

    The run records as consumed the export runs whose files it reads anew and, for a
    silver input, that dataset's latest successful run.
    """
    job = SILVER_JOBS.get(job_name)
    if job is None:
        raise UnknownDataset(f"unknown silver job {job_name!r}; known: {', '.join(SILVER_JOBS)}")
    run = JobRun.objects.start(
        job.name,
        layer=JobRun.Layer.SILVER,
        dataset=job.name.split(".", 1)[1],
        trigger=trigger,
        parameters={"full": full, "inputs": list(job.inputs)},
        parent=parent,
    )
    try:
        with exclusive(f"spark.{job.name}"):
            args: list[str] = []
            if job.incremental_from:
                last = (
                    JobRun.objects.filter(job_name=job.name, status=JobRun.Status.SUCCEEDED)
                    .exclude(cursor_end="")
                    .order_by("-pk")
                    .first()
                )
                after = 0 if full or last is None else int(last.cursor_end)
                new = new_bronze(job.incremental_from, after)
                run.cursor_start, run.cursor_end = str(after), str(new.newest)
                run.save(update_fields=["cursor_start", "cursor_end"])
                if after and not new.dates:
                    sources = ", ".join(f"bronze.{name}" for name in job.incremental_from)
                    run.skip(f"no new {sources} files since batch {after}")
                    return run
                run.consumed.add(*new.runs)
                if after:
                    args = ["--dates", ",".join(new.dates)]
                    run.parameters = {**run.parameters, "dates": new.dates}
                    if job.narrows_by_files and len(new.keys) <= MAX_LISTED_FILES:
                        args += ["--new-files", ",".join(new.keys)]
                        run.parameters["new_files"] = len(new.keys)
            run.consumed.add(*latest_runs(name for name in job.inputs if name in SILVER_JOBS))
            args.append("--overwrite")
            daily = app_settings.SPARK_DAILY_JAVA_OPTIONS if "--dates" in args else ""
            outcome = run_job(job.name, args, run=run, timeout=timeout, java_options=daily)
    except ConcurrentRun as exc:
        run.skip(str(exc))
        return run
    except BaseException as exc:
        if run.status == JobRun.Status.RUNNING:
            run.fail(f"{type(exc).__name__}: {exc}")
        raise
    if not outcome.ok:
        raise SparkJobFailed(run.error.splitlines()[0])
    return run


def latest_runs(job_names) -> list[int]:
    """Return the id of each named job's latest successful run (those that have one)."""
    ids = []
    for name in job_names:
        last = JobRun.objects.filter(job_name=name, status=JobRun.Status.SUCCEEDED)
        pk = last.order_by("-pk").values_list("pk", flat=True).first()
        if pk is not None:
            ids.append(pk)
    return ids


def date_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


class PartitionsExist(Exception):
    """The backfill would replace partitions and --overwrite was not given."""


def existing_partitions(output: str, start: date, end: date) -> list[str]:
    """Return the partitions of `output` whose date lies in [start, end]."""
    from datalake.storage import get_storage

    layer, name = output.split(".", 1)
    found = set()
    for info in get_storage().list(f"{layer}/{name}/"):
        parts = info.key.split("/")[2:-1]
        if any(p.startswith(("_", ".")) for p in parts):
            continue
        dates = [p.removeprefix("date=") for p in parts if p.startswith("date=")]
        if dates and start.isoformat() <= dates[0] <= end.isoformat():
            found.add("/".join(parts))
    return sorted(found)


def backfill(
    *,
    start: date,
    end: date,
    input_name: str,
    output: str,
    overwrite: bool,
    chunk_days: int = 7,
    trigger: str = JobRun.Trigger.CLI,
    timeout: float | None = None,
    progress=lambda line: None,
) -> JobRun:
    """Recompute `output` for [start, end] from `input_name`, one child run per date."""
    job = resolve_output(output)
    if input_name not in job.inputs:
        raise UnknownDataset(
            f"{output} is built from {', '.join(job.inputs)}, not from {input_name!r}"
        )
    if end < start:
        raise ValueError(f"--end-date {end} is before --start-date {start}")
    if chunk_days < 1:
        raise ValueError("--chunk-days must be at least 1")
    existing = existing_partitions(output, start, end)
    if existing and not overwrite:
        shown = ", ".join(existing[:10]) + (
            f" and {len(existing) - 10} more" if len(existing) > 10 else ""
        )
        raise PartitionsExist(f"{output} already has {len(existing)} partitions in range: {shown}")
    parent = JobRun.objects.start(
        "backfill",
        layer=JobRun.Layer.SILVER,
        dataset=output.split(".", 1)[1],
        trigger=trigger,
        parameters={"start_date": str(start), "end_date": str(end), "input": input_name,
                    "output": output, "overwrite": overwrite, "chunk_days": chunk_days},
        interval_start=_midnight(start),
        interval_end=_midnight(end + timedelta(days=1)),
    )  # fmt: skip
    days = date_range(start, end)
    failures = []
    try:
        with exclusive(f"spark.{job.name}"):
            for i in range(0, len(days), chunk_days):
                chunk = days[i : i + chunk_days]
                children = [
                    JobRun.objects.start(
                        job.name,
                        layer=JobRun.Layer.SILVER,
                        dataset=parent.dataset,
                        trigger=trigger,
                        parent=parent,
                        parameters={"date": str(day)},
                        interval_start=_midnight(day),
                        interval_end=_midnight(day + timedelta(days=1)),
                    )
                    for day in chunk
                ]
                args = [
                    "--start-date",
                    str(chunk[0]),
                    "--end-date",
                    str(chunk[-1]),
                    "--output",
                    output,
                ]
                if overwrite:
                    args.append("--overwrite")
                outcome = run_job(job.name, args, run=children[0], timeout=timeout)
                rows = _rows_per_date(outcome.result)
                first = children[0]
                for day, child in zip(chunk, children, strict=True):
                    if child is not first:
                        child.spark_app_id, child.log_file = first.spark_app_id, first.log_file
                        child.finish(first.status, error=first.error)
                    child.rows_out = rows.get(str(day), 0)
                    child.save(update_fields=["rows_out", "spark_app_id", "log_file"])
                    progress(f"{day}  {child.status:<9} {child.rows_out:>10} rows")
                parent.rows_out += sum(rows.values())
                parent.rows_in += first.rows_in
                if not outcome.ok:
                    failures.append(f"{chunk[0]}..{chunk[-1]}: {first.error.splitlines()[0]}")
                    break
    except ConcurrentRun as exc:
        parent.skip(str(exc))
        return parent
    except BaseException as exc:
        parent.fail(f"{type(exc).__name__}: {exc}")
        raise
    if failures:
        parent.fail("; ".join(failures))
        raise SparkJobFailed(parent.error)
    parent.succeed()
    return parent


def _rows_per_date(result: dict) -> dict[str, int]:
    rows: dict[str, int] = {}
    for partition, count in result.get("partition_rows", {}).items():
        day = next((p[5:] for p in partition.split("/") if p.startswith("date=")), "")
        rows[day] = rows.get(day, 0) + int(count)
    return rows


def _midnight(day: date):
    from datetime import UTC, datetime, time

    return datetime.combine(day, time.min, tzinfo=UTC)
