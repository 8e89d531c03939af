"""Refresh the online features with Spark and serve the new values; check parity."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from datalake.features import (
    DEFAULT_FEATURE_SET,
    FEATURE_SETS,
    ROW_COLUMNS,
    UnknownFeatureSet,
    get_online_features,
    load_refresh,
    newest_partition,
    read_rows,
)
from datalake.gold import input_runs
from datalake.lineage import record_consumed
from datalake.models import JobRun
from datalake.runs import run_exclusive
from datalake.spark.runner import SparkJobFailed, run_job

log = logging.getLogger(__name__)

REFRESH_JOB = "gold.features.stop_execution_features"
PARITY_JOB = "gold.features.parity"
#: Online features are kept this long (the retention of gold/features/).
RETENTION_DAYS = 90


class ParityFailed(Exception):
    """Served feature values differ from what the training-set code computes."""


def refresh_features(
    feature_set: str = DEFAULT_FEATURE_SET,
    *,
    as_of: datetime | None = None,
    trigger: str = JobRun.Trigger.CLI,
    timeout: float | None = None,
) -> JobRun:
    """Recompute the latest values of ``feature_set`` and switch the cache to them.

    The Spark job publishes only when its parity check passes; the cache is loaded only
    from a run that succeeded, so a failed run leaves readers on the last good version.
    """
    if feature_set not in FEATURE_SETS:
        raise UnknownFeatureSet(f"unknown feature set {feature_set!r}")
    args = []
    if as_of is not None:
        as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        args += ["--as-of", as_of.astimezone(UTC).isoformat()]

    def body(run: JobRun) -> None:
        runs = input_runs()
        outcome = run_job(REFRESH_JOB, args, run=run, timeout=timeout)
        details = outcome.result.get("details", {})
        kept = ("as_of", "computed_at", "version", "partitions", "pairs")
        run.parameters = {**run.parameters, **{k: details[k] for k in kept if k in details}}
        if runs:
            record_consumed(run, [int(pair.split("=")[1]) for pair in runs.split(",")])
        if not outcome.ok:
            run.save(update_fields=["parameters"])
            raise SparkJobFailed(run.error.splitlines()[0])
        try:
            run.parameters["cache_entries"] = load_refresh(
                feature_set, run.pk, details.get("partitions", [])
            )
        except Exception as exc:  # readers fall back to Parquet: the refresh itself succeeded
            log.warning("feature cache not loaded after run %s: %s: %s", run.pk,
                        type(exc).__name__, exc)  # fmt: skip
            run.parameters["cache_entries"] = None
        run.save(update_fields=["parameters"])

    # Two refreshes never overlap: the second is recorded SKIPPED.
    return run_exclusive(
        REFRESH_JOB,
        body,
        layer=JobRun.Layer.GOLD,
        lock=f"spark.{REFRESH_JOB}",
        dataset=f"features/{feature_set}",
        trigger=trigger,
        parameters={"arguments": args},
    )


def served_parity(feature_set: str, samples: int) -> tuple[int, list[str]]:
    """Compare what lookups serve with the newest published rows of up to ``samples``
    (client, symbol); return (checked, differences)."""
    root = FEATURE_SETS[feature_set]
    from datalake.storage import get_storage

    parts = (part for info in get_storage().list(root) for part in info.key.split("/"))
    clients = sorted({int(p.split("=", 1)[1]) for p in parts if p.startswith("client_id=")})
    rows = [r for c in clients for r in read_rows(newest_partition(feature_set, c))]
    rows = sorted(rows, key=lambda r: (r["client_id"], r["symbol"]))[:samples]
    served = get_online_features([(r["client_id"], r["symbol"]) for r in rows], feature_set)
    differences = []
    for row, answer in zip(rows, served, strict=True):
        expected = {k: v for k, v in row.items() if k not in ROW_COLUMNS}
        if answer["features"] != expected or answer["as_of"] != row["as_of"]:
            differences.append(f"{row['client_id']}/{row['symbol']}")
    return len(rows), differences


def check_parity(
    samples: int, feature_set: str = DEFAULT_FEATURE_SET, *, timeout: float | None = None
) -> JobRun:
    """Check that served values equal the training-set computation at their ``as_of``:
    the served values against the published rows here, those rows against a
    recomputation by the training-set code in Spark. Raise ParityFailed if not."""
    if feature_set not in FEATURE_SETS:
        raise UnknownFeatureSet(f"unknown feature set {feature_set!r}")
    checked, differences = served_parity(feature_set, samples)
    run = JobRun.objects.start(
        PARITY_JOB, layer=JobRun.Layer.GOLD, dataset=f"features/{feature_set}",
        trigger=JobRun.Trigger.CLI, parameters={"samples": samples},
    )  # fmt: skip
    run_job(PARITY_JOB, ["--samples", str(samples)], run=run, timeout=timeout)
    run.parameters["served_checked"] = checked
    run.parameters["served_differences"] = differences
    run.save(update_fields=["parameters"])
    if differences:
        raise ParityFailed(
            f"{len(differences)} of {checked} served values differ from the published rows: "
            + ", ".join(differences[:5])
        )
    if run.status != JobRun.Status.SUCCEEDED:
        raise ParityFailed((run.error or "parity job failed").splitlines()[0])
    return run
