"""Load a job's output: stage it, check what was staged, then publish partition by partition.

Readers never see a half-written partition and a failed check publishes nothing:

1. write every target partition under ``<lake>/_staging/run-<id>/<layer>/<name>/``;
2. refuse (before publishing anything) if a target partition exists and --overwrite is
   off, and run the quality checks on the staged files;
3. for each target partition: move the live directory aside, move the staged one in,
   delete the old one (a target with no rows left is simply removed);
4. delete the run's staging directory.

Only target partitions are touched (dynamic partition overwrite). All moves go through
Hadoop's FileSystem API, so the same code runs on ``file://`` and ``s3a://``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from spark_jobs.common.checks import Check, check_partitions, failed_critical
from spark_jobs.common.config import JobConfig
from spark_jobs.common.lake import LakeFS, dataset_uri, staging_root, staging_uri
from spark_jobs.common.report import ChecksFailed, Refused, Report

log = logging.getLogger(__name__)

LISTED = 20  # partitions named in a refusal message
MAX_ROWS_PER_FILE = 5_000_000  # one file per partition, unless it is huge


@dataclass(frozen=True)
class Output:
    """Where and how a job writes: dataset name, partition columns, order within files."""

    dataset: str
    partition_by: tuple[str, ...]
    sort_by: tuple[str, ...] = ()


def write_checked(
    spark: SparkSession,
    config: JobConfig,
    frame: DataFrame,
    output: Output,
    checks: Sequence[Check] | Callable[[DataFrame], Sequence[Check]],
    report: Report,
    also_replace: Iterable[str] = (),
) -> None:
    """Stage ``frame``, check it, and publish it over its partitions of ``output``.

    ``frame`` is computed once, by the staging write (no cache). ``checks`` may be a
    function of the staged frame (a reconciliation that needs its partitions).
    ``also_replace`` names partitions to rewrite even if ``frame`` has no row for them (a
    row that moved to another partition must not stay behind in its old one).
    """
    fs = LakeFS(spark)
    live = dataset_uri(config.lake_uri, output.dataset)
    staged = staging_uri(config.lake_uri, config.run_id, output.dataset)
    aside = f"{staging_root(config.lake_uri, config.run_id)}/_replaced/" + output.dataset.replace(
        ".", "/", 1
    )

    started = time.monotonic()
    fs.delete(staged)
    (
        frame.repartition(*output.partition_by)
        .sortWithinPartitions(*output.partition_by, *output.sort_by)
        .write.mode("overwrite")
        .option("maxRecordsPerFile", MAX_ROWS_PER_FILE)
        .partitionBy(*output.partition_by)
        .parquet(staged)
    )
    report.seconds["write"] = round(time.monotonic() - started, 3)

    started = time.monotonic()
    staged_frame = spark.read.schema(frame.schema).parquet(staged)
    if callable(checks):
        checks = checks(staged_frame)
    results, partition_rows = check_partitions(
        staged_frame, output.dataset, checks, output.partition_by
    )
    written = sorted(partition_rows)
    targets = sorted(set(written) | set(also_replace))
    report.partitions = targets
    report.removed_partitions = sorted(set(targets) - set(written))
    existing = fs.existing(live, output.partition_by, targets)
    if existing and not config.overwrite:
        fs.delete(staging_root(config.lake_uri, config.run_id))
        listed = ", ".join(existing[:LISTED])
        more = f" and {len(existing) - LISTED} more" if len(existing) > LISTED else ""
        raise Refused(
            f"{len(existing)} partition(s) of {output.dataset} already exist and "
            f"--overwrite was not given: {listed}{more}"
        )
    report.partition_rows = dict(sorted(partition_rows.items()))
    report.outputs[output.dataset] = sum(partition_rows.values())
    report.checks = [r.as_dict() for r in results]
    report.seconds["checks"] = round(time.monotonic() - started, 3)
    failed = failed_critical(results)
    if failed:
        names = ", ".join(f"{r.check} ({r.observed})" for r in failed)
        raise ChecksFailed(f"critical checks failed, nothing published ({staged}): {names}")

    started = time.monotonic()
    sizes = fs.data_files(staged)
    publish(fs, staged, live, aside, targets, set(written), set(existing))
    fs.delete(staging_root(config.lake_uri, config.run_id))
    report.published = True
    record_files(report, sizes)
    report.seconds["publish"] = round(time.monotonic() - started, 3)
    log.info("published %d partition(s) of %s", len(targets), output.dataset)


def record_files(report: Report, sizes: dict[str, int]) -> None:
    """Count the published files and their bytes, in total and per partition.

    ``sizes`` maps a path relative to the dataset (``client_id=1/date=.../part-0.parquet``)
    to its size.
    """
    report.files, report.bytes = len(sizes), sum(sizes.values())
    for path, size in sorted(sizes.items()):
        partition = path.rpartition("/")[0]
        report.partition_files[partition] = report.partition_files.get(partition, 0) + 1
        report.partition_bytes[partition] = report.partition_bytes.get(partition, 0) + size


def publish(
    fs: LakeFS,
    staged: str,
    live: str,
    aside: str,
    targets: Sequence[str],
    written: set[str],
    existing: set[str],
) -> None:
    """Swap each target partition of ``live`` for its staged version (or remove it).

    ``existing`` names the targets that are live now. A dataset that does not exist yet
    is published in one move of the whole staged directory.
    """
    if not existing and not fs.exists(live):
        fs.rename(staged, live)
        return
    for partition in targets:
        current, new, old = f"{live}/{partition}", f"{staged}/{partition}", f"{aside}/{partition}"
        replacing = partition in existing
        if replacing:
            fs.delete(old)  # left over by an earlier attempt of this same run
            fs.rename(current, old)
        if partition in written:
            try:
                fs.rename(new, current)
            except Exception:
                if replacing:
                    fs.rename(old, current)
                raise
        if replacing:
            fs.delete(old)
