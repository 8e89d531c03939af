"""Silver: which Spark job builds which dataset from what, and running it tracked."""

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import Min

from datalake.conf import app_settings
from datalake.locks import ConcurrentRun, exclusive
from datalake.models import ExportBatch, JobRun
from datalake.runs import run_exclusive
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

    def body(run: JobRun) -> None:
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
            # The export batches consumed: after `after` (none: all) up to `newest`.
            run.cursor_start, run.cursor_end = str(after or ""), str(new.newest)
            run.save(update_fields=["cursor_start", "cursor_end"])
            if after and not new.dates:
                sources = ", ".join(f"bronze.{name}" for name in job.incremental_from)
                run.skip(f"no new {sources} files since batch {after}")
                return
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
        if not outcome.ok:
            raise SparkJobFailed(run.error.splitlines()[0])

    # Two runs of one job never overlap: the second is recorded SKIPPED.
    return run_exclusive(
        job.name,
        body,
        layer=JobRun.Layer.SILVER,
        lock=f"spark.{job.name}",
        dataset=job.name.split(".", 1)[1],
        trigger=trigger,
        parameters={"full": full, "inputs": list(job.inputs)},
        parent=parent,
    )


def latest_runs(job_names) -> list[int]:
    """Return the id of each named job's latest successful run (those that have one)."""
    ids = []
    for name in job_names:
        last = JobRun.objects.filter(job_name=name, status=JobRun.Status.SUCCEEDED)
        pk = last.order_by("-pk").values_list("pk", flat=True).first()
        if pk is not None:
            ids.append(pk)
    return ids


class PartitionsExist(Exception):
    """The backfill would replace partitions and --overwrite was not given."""


def partition_of(key: str) -> tuple[str, str] | None:
    """Return (partition path, date) of a dataset's data file key, or None if it is not one.

    `silver/x/client_id=1/date=2024-03-01/part-0.parquet` gives
    ("client_id=1/date=2024-03-01", "2024-03-01"); files under `_`/`.` directories and
    files outside a `date=` partition are not data of a date.
    """
    parts = key.split("/")[2:-1]
    if any(p.startswith(("_", ".")) for p in parts):
        return None
    dates = [p.removeprefix("date=") for p in parts if p.startswith("date=")]
    return ("/".join(parts), dates[0]) if dates else None


def _partitions_in_range(dataset: str, start: date, end: date) -> dict[str, str]:
    from datalake.storage import get_storage

    layer, name = dataset.split(".", 1)
    first, last = start.isoformat(), end.isoformat()
    found = {}
    for info in get_storage().list(f"{layer}/{name}/"):
        partition = partition_of(info.key)
        if partition and first <= partition[1] <= last:
            found[partition[0]] = partition[1]
    return found


def existing_partitions(output: str, start: date, end: date) -> list[str]:
    """Return the partitions of `output` whose date lies in [start, end]."""
    return sorted(_partitions_in_range(output, start, end))


def input_dates(input_name: str, start: date, end: date) -> list[date]:
    """Return the dates in [start, end] on which `input_name` has data files (one listing)."""
    days = set(_partitions_in_range(input_name, start, end).values())
    return sorted(date.fromisoformat(day) for day in days)


def chunk_dates(days: list[date], size: int) -> list[list[date]]:
    """Split sorted `days` into runs of at most `size` dates, in order.

    A chunk may span dates without input: the job reads only the partitions that exist,
    so an empty date inside a chunk costs nothing, while a spark-submit costs seconds.
    """
    return [days[i : i + size] for i in range(0, len(days), size)]


def empty_stretches(start: date, end: date, days: list[date]) -> list[tuple[date, date]]:
    """Return the maximal [first, last] stretches of [start, end] that hold none of `days`."""
    stretches = []
    first = start
    for day in [*sorted(days), end + timedelta(days=1)]:
        if day > first:
            stretches.append((first, day - timedelta(days=1)))
        first = max(first, day + timedelta(days=1))
    return stretches


def _per_date(by_partition: dict[str, int]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for partition, value in by_partition.items():
        day = next((p[5:] for p in partition.split("/") if p.startswith("date=")), "")
        totals[day] = totals.get(day, 0) + int(value)
    return totals


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
    """Recompute `output` for [start, end] from `input_name`, one child run per date.

    Only the dates on which the input has data are submitted to Spark, `chunk_days` of
    them per spark-submit; each stretch of dates without input is one SKIPPED child run.
    """
    job = resolve_output(output)
    if input_name not in job.inputs:
        raise UnknownDataset(
            f"{output} is built from {', '.join(job.inputs)}, not from {input_name!r}"
        )
    if end < start:
        raise ValueError(f"--end-date {end} is before --start-date {start}")
    if end >= date.max:
        raise ValueError(f"--end-date must be before {date.max}")
    if chunk_days < 1:
        raise ValueError("--chunk-days must be at least 1")
    existing = existing_partitions(output, start, end)
    if existing and not overwrite:
        shown = ", ".join(existing[:10]) + (
            f" and {len(existing) - 10} more" if len(existing) > 10 else ""
        )
        raise PartitionsExist(f"{output} already has {len(existing)} partitions in range: {shown}")
    days = input_dates(input_name, start, end)
    chunks = chunk_dates(days, chunk_days)
    parent = JobRun.objects.start(
        "backfill",
        layer=JobRun.Layer.SILVER,
        dataset=output.split(".", 1)[1],
        trigger=trigger,
        parameters={"start_date": str(start), "end_date": str(end), "input": input_name,
                    "output": output, "overwrite": overwrite, "chunk_days": chunk_days,
                    "dates_with_input": len(days), "spark_submits": len(chunks)},
        interval_start=_midnight(start),
        interval_end=_midnight(end + timedelta(days=1)),
    )  # fmt: skip
    failures = []
    try:
        with exclusive(f"spark.{job.name}"):
            for first_day, last_day in empty_stretches(start, end, days):
                _skip_stretch(parent, job, input_name, first_day, last_day, progress)
            if not days:
                parent.skip(f"no {input_name} data in {start}..{end}: nothing to recompute")
                return parent
            for chunk in chunks:
                error = _backfill_chunk(parent, job, chunk, output, overwrite, timeout, progress)
                if error:
                    failures.append(f"{chunk[0]}..{chunk[-1]}: {error.splitlines()[0]}")
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


def _skip_stretch(
    parent: JobRun, job: SilverJob, input_name: str, first: date, last: date, progress
) -> None:
    """Record dates without input as one SKIPPED child run: no Spark, no write."""
    count = (last - first).days + 1
    child = JobRun.objects.start(
        job.name,
        layer=JobRun.Layer.SILVER,
        dataset=parent.dataset,
        trigger=parent.trigger,
        parent=parent,
        parameters={"start_date": str(first), "end_date": str(last), "dates": count},
        interval_start=_midnight(first),
        interval_end=_midnight(last + timedelta(days=1)),
    )
    child.skip(f"no {input_name} data on these {count} date(s)")
    span = f"{first}" if count == 1 else f"{first}..{last}"
    progress(f"{span}  {child.status:<9} no input ({count} dates)")


def _backfill_chunk(
    parent: JobRun,
    job: SilverJob,
    chunk: list[date],
    output: str,
    overwrite: bool,
    timeout: float | None,
    progress,
) -> str:
    """Run one spark-submit for `chunk`, one child run per date; return its error, if any.

    The spark-submit is recorded on the first date's run (input rows, checks, log);
    every date's run gets the rows, files and bytes published in its partitions.
    """
    children = [
        JobRun.objects.start(
            job.name,
            layer=JobRun.Layer.SILVER,
            dataset=parent.dataset,
            trigger=parent.trigger,
            parent=parent,
            parameters={"date": str(day), "spark_submit_dates": f"{chunk[0]}..{chunk[-1]}"},
            interval_start=_midnight(day),
            interval_end=_midnight(day + timedelta(days=1)),
        )
        for day in chunk
    ]
    first = children[0]
    args = ["--start-date", str(chunk[0]), "--end-date", str(chunk[-1]), "--output", output]
    if overwrite:
        args.append("--overwrite")
    try:
        outcome = run_job(job.name, args, run=first, timeout=timeout)
    except BaseException as exc:
        for child in children:
            if child.status == JobRun.Status.RUNNING:
                child.fail(first.error or f"{type(exc).__name__}: {exc}")
        raise
    result = outcome.result
    rows = _per_date(result.get("partition_rows", {}))
    files = _per_date(result.get("partition_files", {}))
    sizes = _per_date(result.get("partition_bytes", {}))
    published = result.get("published", False)
    for day, child in zip(chunk, children, strict=True):
        key = str(day)
        child.rows_out = rows.get(key, 0) if published else 0
        child.files_written = files.get(key, 0)
        child.bytes_written = sizes.get(key, 0)
        if child is not first:
            child.spark_app_id, child.log_file = first.spark_app_id, first.log_file
            child.finish(first.status, error=first.error)
        else:
            child.save(update_fields=["rows_out", "files_written", "bytes_written"])
        progress(f"{day}  {child.status:<9} {child.rows_out:>10} rows")
    parent.rows_in += first.rows_in
    for counter in ("rows_out", "files_written", "bytes_written"):
        setattr(
            parent, counter, getattr(parent, counter) + sum(getattr(c, counter) for c in children)
        )
    parent.save(update_fields=["rows_in", "rows_out", "files_written", "bytes_written"])
    return "" if outcome.ok else first.error


def _midnight(day: date):
    from datetime import UTC, datetime, time

    return datetime.combine(day, time.min, tzinfo=UTC)
