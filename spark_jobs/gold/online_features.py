"""gold.features.stop_execution_features: the latest feature values per (client, symbol).

``gold/features/stop_execution_features/client_id=N/date=YYYY-MM-DD/*.parquet`` plus
``_feature_set.json`` (names, types, definitions and their version) at the set's root.

A refresh picks a cutoff ``t`` (``--as-of``, else the end of the minute of the newest
one-minute kline: the newest complete bronze data), makes one synthetic sample per
(client, symbol) with a stop execution triggered in the last :data:`ACTIVITY_DAYS` days
before ``t``, and computes its features at ``t`` with
:func:`spark_jobs.gold.features.compute_features`: the very function the training sets
use. The sample's operation is the pair's most recent stop execution's operation, with
its stop price, as if that stop triggered at ``t``; ``stop_distance_pct`` and
``time_to_trigger_sec`` are null when that operation has no entry fill before ``t`` (among
the orders of the last :data:`ACTIVITY_DAYS` days): the online null policy.

Incremental: only the silver and bronze partitions dated within the activity window (and
the klines of the last 24 hours) are read. Rows go to the partition of ``date(t)``; a
pair refreshed earlier that day and not now keeps its earlier row there, and so does a
pair whose earlier row is newer than ``t`` (a back-dated refresh: :func:`merge_earlier`).

Parity (critical): for sampled rows of the staged output, the training-set path -- the
inputs cut at ``t`` (:func:`cut_at`) then :func:`compute_features` -- must give exactly
the values written. A failed check publishes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs.common.bronze import BRONZE_KLINES, BRONZE_ORDERS
from spark_jobs.common.checks import CheckResult, UniqueCheck, check_partitions, failed_critical
from spark_jobs.common.config import JobConfig
from spark_jobs.common.datasets import read_dataset
from spark_jobs.common.lake import LakeFS, partition_path, staging_root
from spark_jobs.common.report import ChecksFailed, Refused, Report
from spark_jobs.gold import features
from spark_jobs.gold.features import (
    FEATURE_NAMES,
    FEATURES,
    SCOPE,
    compute_features,
    recheck,
)
from spark_jobs.silver import operations, stop_executions

log = logging.getLogger(__name__)

FEATURE_SET = "stop_execution_features"
DATASET = f"gold.features.{FEATURE_SET}"
ROOT = f"gold/features/{FEATURE_SET}"
METADATA = "_feature_set.json"
PARTITIONS = ("client_id", "date")
ACTIVITY_DAYS = 7
PARITY_SAMPLES = 20
ROW_COLUMNS = ["client_id", "symbol", "as_of", "computed_at", "operation_id", "stop_price",
               *FEATURE_NAMES, "feature_version", "refresh_run_id", "date"]  # fmt: skip


def feature_set_uri(root: str) -> str:
    """Return the directory of the feature set under lake ``root``."""
    return f"{root}/{ROOT}"


def definitions_version() -> str:
    """Return the version of the feature definitions: a hash of :data:`FEATURES`."""
    payload = json.dumps([f.as_dict() for f in FEATURES], sort_keys=True)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def metadata() -> dict:
    """Return the feature set's metadata document (``_feature_set.json``)."""
    return {
        "feature_set": FEATURE_SET,
        "version": definitions_version(),
        "entity": ["client_id", "symbol"],
        "as_of": "the instant the values describe: the refresh's cutoff t; every window ends"
        " before it",
        "activity_days": ACTIVITY_DAYS,
        "null_policy": "stop_distance_pct and time_to_trigger_sec describe the pair's latest"
        " stop execution's operation as if it triggered at as_of; null when that operation"
        " has no entry fill before as_of",
        "features": [f.as_dict() for f in FEATURES],
        "layout": f"{ROOT}/client_id=N/date=YYYY-MM-DD/*.parquet (date of as_of, UTC)",
    }


def cutoff(klines: DataFrame) -> datetime | None:
    """Return the end of the minute of the newest one-minute kline (None without one)."""
    micros = klines.agg(F.max(F.unix_micros("close_time")).alias("m")).first()["m"]
    if micros is None:
        return None
    newest = datetime.fromtimestamp(micros / 1_000_000, UTC)
    return newest.replace(second=0, microsecond=0) + timedelta(minutes=1)


def online_samples(executions: DataFrame, t: datetime, activity_days: int) -> DataFrame:
    """Return one feature sample at ``t`` per (client, symbol) with a stop execution
    triggered in [t - activity_days, t): its latest one's operation and stop price."""
    recent = executions.filter(
        (F.col("triggered_at") < F.lit(t))
        & (F.col("triggered_at") >= F.lit(t - timedelta(days=activity_days)))
    )
    latest = Window.partitionBy("client_id", "symbol").orderBy(
        F.col("triggered_at").desc(), F.col("execution_id").desc()
    )
    return (
        recent.withColumn("_n", F.row_number().over(latest))
        .filter(F.col("_n") == 1)
        .select(
            F.lit(0).alias(SCOPE),
            F.concat_ws("/", F.col("client_id").cast("string"), "symbol").alias("sample_key"),
            "client_id",
            "symbol",
            "operation_id",
            "stop_price",
            F.lit(t).cast("timestamp").alias("t"),
        )
    )


def to_rows(featured: DataFrame, computed_at: datetime, run_id: str) -> DataFrame:
    """Return the published rows of features computed at each sample's ``t``."""
    return featured.select(
        "client_id",
        "symbol",
        F.col("t").alias("as_of"),
        F.lit(computed_at).cast("timestamp").alias("computed_at"),
        "operation_id",
        "stop_price",
        *[F.col(f.name).cast(f.type).alias(f.name) for f in FEATURES],
        F.lit(definitions_version()).alias("feature_version"),
        F.lit(int(run_id) if run_id.isdigit() else None).cast("bigint").alias("refresh_run_id"),
        F.to_date("t").alias("date"),
    )


def parity_check(
    rows: DataFrame, inputs: tuple[DataFrame, DataFrame, DataFrame], how_many: int, seed: str
) -> CheckResult:
    """Recompute ``how_many`` pseudo-random rows the training-set way (inputs cut at
    ``as_of``, then compute_features) and require exactly the values in ``rows``."""
    picked = (
        rows.orderBy(F.xxhash64("client_id", "symbol", F.lit(seed)))
        .limit(how_many)
        .select(
            F.lit(0).alias(SCOPE),
            F.concat_ws("/", F.col("client_id").cast("string"), "symbol").alias("sample_key"),
            "client_id",
            "symbol",
            "operation_id",
            "stop_price",
            F.col("as_of").alias("t"),
            *FEATURE_NAMES,
        )
        .localCheckpoint()
    )
    checked, differ, examples = recheck(picked, inputs)
    observed = f"{differ} of {checked} sampled (client, symbol) differ"
    if differ:
        observed += ": " + ", ".join(examples)
    return CheckResult(DATASET, "", "online_offline_parity", differ == 0, observed, True)


def merge_earlier(fresh: DataFrame, earlier: DataFrame, t: datetime) -> DataFrame:
    """Return the rows of a partition after a refresh at ``t``: one per (client, symbol),
    the newer of the fresh row and the row published earlier that day.

    A pair refreshed earlier today and not now keeps its earlier row; a pair whose
    earlier row is newer than ``t`` (this refresh is back-dated) keeps it too, so the
    partition, and what lookups serve from it, never goes back in time.
    """
    pair = ["client_id", "symbol"]
    newer = earlier.filter(F.col("as_of") > F.lit(t))
    older = earlier.filter(F.col("as_of") <= F.lit(t))
    not_refreshed = older.join(fresh.select(*pair), pair, "anti")
    kept = newer.unionByName(not_refreshed).select(*ROW_COLUMNS)
    return fresh.join(newer.select(*pair), pair, "anti").select(*ROW_COLUMNS).unionByName(kept)


def read_inputs(
    spark: SparkSession, root: str, t: datetime, activity_days: int
) -> tuple[DataFrame, tuple[DataFrame, DataFrame, DataFrame]]:
    """Return (executions, (fills, klines, resolutions)) from the partitions that can
    matter at ``t``: the activity window's, and the klines of the last 24 hours. The three
    inputs are persisted (the caller's session ends with the job)."""
    first = (t - timedelta(days=activity_days)).date()
    executions = read_dataset(spark, root, stop_executions.LAYOUT, first, t.date())
    orders = read_dataset(spark, root, BRONZE_ORDERS, first, t.date())
    klines = read_dataset(
        spark, root, BRONZE_KLINES, (t - timedelta(hours=features.LONGEST_WINDOW_H + 1)).date(),
        t.date(),
    )  # fmt: skip
    return executions, features.persisted_inputs(operations.fills(orders), klines, executions)


def newest_klines(spark: SparkSession, root: str) -> DataFrame:
    """Return the one-minute klines of the newest date partition of bronze.klines."""
    fs = LakeFS(spark)
    uri = f"{root}/bronze/klines"
    days = sorted(p.rsplit("=", 1)[-1] for p in fs.partitions(uri, ("date",)))
    if not days:
        return spark.createDataFrame([], BRONZE_KLINES.schema)
    last = date.fromisoformat(days[-1])
    return features.klines_input(read_dataset(spark, root, BRONZE_KLINES, last, last))


def run(spark: SparkSession, config: JobConfig, report: Report) -> None:
    """Refresh the online features (job gold.features.stop_execution_features)."""
    root = config.lake_uri
    fs = LakeFS(spark)
    started = time.monotonic()
    t = config.as_of or cutoff(newest_klines(spark, root))
    if t is None:
        raise Refused("bronze.klines holds no one-minute kline: nothing to compute features at")
    computed_at = datetime.now(UTC).replace(microsecond=0)
    report.scope = f"{FEATURE_SET} as of {t.isoformat()}"
    report.details.update({"dataset": DATASET, "as_of": t.isoformat(),
                           "computed_at": computed_at.isoformat(),
                           "version": definitions_version()})  # fmt: skip

    executions, inputs = read_inputs(spark, root, t, ACTIVITY_DAYS)
    samples = online_samples(executions, t, ACTIVITY_DAYS)
    fresh = to_rows(compute_features(samples, *inputs), computed_at, config.run_id)
    fresh = fresh.localCheckpoint()
    report.seconds["features"] = round(time.monotonic() - started, 3)

    live = feature_set_uri(root)
    day = t.date().isoformat()
    clients = sorted(r["client_id"] for r in fresh.select("client_id").distinct().collect())
    targets = [partition_path(PARTITIONS, (c, day)) for c in clients]
    existing = [p for p in targets if fs.exists(f"{live}/{p}")]
    merged = fresh
    if existing:
        earlier = (
            spark.read.option("pathGlobFilter", "*.parquet")
            .option("basePath", live)
            .parquet(*[f"{live}/{p}" for p in existing])
            .select(*ROW_COLUMNS)
        )
        merged = merge_earlier(fresh, earlier, t)

    staged = f"{staging_root(root, config.run_id)}/{ROOT}"
    started = time.monotonic()
    fs.delete(staged)
    (
        merged.repartition(*PARTITIONS)
        .sortWithinPartitions("symbol")
        .write.mode("overwrite")
        .partitionBy(*PARTITIONS)
        .parquet(staged)
    )
    report.seconds["write"] = round(time.monotonic() - started, 3)

    started = time.monotonic()
    staged_rows = (
        spark.read.option("pathGlobFilter", "*.parquet").option("basePath", staged)
        .parquet(staged)
        if clients
        else merged
    )  # fmt: skip
    checks = [UniqueCheck("client_symbol_unique", ("client_id", "symbol"))]
    results, partition_rows = check_partitions(staged_rows, DATASET, checks, PARTITIONS)
    staged_fresh = staged_rows.filter(F.col("refresh_run_id").eqNullSafe(
        int(config.run_id) if config.run_id.isdigit() else None))  # fmt: skip
    results.append(parity_check(staged_fresh, inputs, PARITY_SAMPLES, config.run_id))
    report.checks = [r.as_dict() for r in results]
    report.seconds["checks"] = round(time.monotonic() - started, 3)
    failed = failed_critical(results)
    if failed:
        names = ", ".join(f"{r.check} ({r.observed})" for r in failed)
        raise ChecksFailed(f"critical checks failed, nothing published ({staged}): {names}")

    started = time.monotonic()
    for path in targets:
        _swap(fs, f"{staged}/{path}", f"{live}/{path}")
    fs.write_text(f"{live}/{METADATA}", json.dumps(metadata(), indent=2) + "\n")
    fs.delete(staging_root(root, config.run_id))
    report.seconds["publish"] = round(time.monotonic() - started, 3)
    report.published = True
    report.partitions = targets
    report.partition_rows = dict(sorted(partition_rows.items()))
    report.outputs[DATASET] = fresh.count()
    report.details.update({"partitions": [f"{ROOT}/{p}" for p in targets],
                           "pairs": report.outputs[DATASET]})  # fmt: skip
    log.info("refreshed %s as of %s: %s pairs", DATASET, t, report.outputs[DATASET])


def _swap(fs: LakeFS, staged: str, live: str) -> None:
    """Replace the live partition directory by the staged one."""
    aside = live + ".old"
    fs.delete(aside)
    if fs.exists(live):
        fs.rename(live, aside)
    fs.rename(staged, live)
    fs.delete(aside)


def run_parity(spark: SparkSession, config: JobConfig, report: Report) -> None:
    """Check parity of the latest published rows (job gold.features.parity)."""
    root = config.lake_uri
    live = feature_set_uri(root)
    if not LakeFS(spark).exists(live):
        raise Refused(f"{DATASET} has not been refreshed yet")
    rows = spark.read.option("pathGlobFilter", "*.parquet").option("basePath", live).parquet(live)
    # As epoch micros: a collected timestamp would come back in the driver's local zone.
    newest = rows.agg(F.max(F.unix_micros("as_of")).alias("t")).first()["t"]
    if newest is None:
        raise Refused(f"{DATASET} holds no row")
    t = datetime.fromtimestamp(newest / 1_000_000, UTC)
    rows = rows.filter(F.col("as_of") == F.lit(t))
    _, inputs = read_inputs(spark, root, t, ACTIVITY_DAYS)
    result = parity_check(rows, inputs, config.samples or PARITY_SAMPLES, "parity")
    report.scope = f"{FEATURE_SET} parity as of {t.isoformat()}"
    report.checks = [result.as_dict()]
    report.details.update({"as_of": t.isoformat(), "observed": result.observed})
    if not result.passed:
        raise ChecksFailed(f"online/offline parity failed: {result.observed}")
