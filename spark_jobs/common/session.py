"""Get the SparkSession with the settings every job relies on."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

#: Runtime SQL settings every job needs, applied even to a session that already exists.
SESSION_SETTINGS = {
    # Dates of partitions and all timestamps are UTC, whatever the machine's zone.
    "spark.sql.session.timeZone": "UTC",
    # INT96 (Spark's default) is legacy; micros read back exactly in pyarrow and DuckDB.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "zstd",
    # Spark's default, pinned: spark_jobs.common.decimals derives its types from it.
    "spark.sql.decimalOperations.allowPrecisionLoss": "true",
    # Let adaptive execution coalesce the shuffle partitions of cached frames too.
    "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
    # List partition directories on the driver: a Spark job per listing (the default
    # past 32 paths) costs more than it saves on a lake of a few thousand partitions.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "10000",
}


def get_session(app_name: str) -> tuple[SparkSession, bool]:
    """Return (session, created): the active session if there is one, else a new one.

    The master and resources come from spark-submit. ``created`` tells the caller whether
    stopping the session at the end is its job (a test's shared session is not).
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        spark, created = active, False
    else:
        # The jobs need no persistent catalog; keep CREATE DATABASE out of the cwd.
        warehouse = tempfile.mkdtemp(prefix="spark-warehouse-")
        spark = (
            SparkSession.builder.appName(app_name)
            .config("spark.sql.warehouse.dir", warehouse)
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("WARN")
        created = True
    configure(spark)
    return spark, created


def configure(spark: SparkSession) -> None:
    """Apply :data:`SESSION_SETTINGS` to ``spark``."""
    for key, value in SESSION_SETTINGS.items():
        spark.conf.set(key, value)


@contextmanager
def shuffle_partitions(spark: SparkSession, at_most: int) -> Iterator[None]:
    """Use at most ``at_most`` shuffle partitions inside the block, then restore the
    configured number."""
    key = "spark.sql.shuffle.partitions"
    configured = spark.conf.get(key) or "200"
    spark.conf.set(key, str(min(int(configured), at_most)))
    try:
        yield
    finally:
        spark.conf.set(key, configured)
