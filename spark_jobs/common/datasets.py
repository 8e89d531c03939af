"""Datasets on the lake: layout (name, schema, partitions) and reading them with Spark."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, StructType

from spark_jobs.common.lake import NULL_PARTITION, LakeFS, dataset_uri

MONEY = DecimalType(20, 8)
SLIPPAGE = DecimalType(10, 4)


@dataclass(frozen=True)
class Layout:
    """A dataset on the lake: its dotted name, full schema, and partition columns."""

    dataset: str
    schema: StructType
    partition_by: tuple[str, ...]

    def renamed(self, dataset: str) -> Layout:
        """Return the same layout for another dataset name (``silver.x_v2``)."""
        return Layout(dataset, self.schema, self.partition_by)


def date_between(first: date | None, last: date | None) -> Column:
    """Return a filter on the ``date`` partition column (None bounds are open)."""
    condition = F.lit(True)
    if first is not None:
        condition = condition & (F.col("date") >= F.lit(first))
    if last is not None:
        condition = condition & (F.col("date") <= F.lit(last))
    return condition


def partition_key(columns: Sequence[str]) -> Column:
    """Return each row's partition path (``client_id=1/date=2024-12-27``) as a column,
    spelled as :func:`spark_jobs.common.lake.partition_path` spells it."""
    parts = [
        F.concat(F.lit(f"{c}="), F.coalesce(F.col(c).cast("string"), F.lit(NULL_PARTITION)))
        for c in columns
    ]
    return F.concat_ws("/", *parts)


def in_partitions(frame: DataFrame, columns: Sequence[str], paths: Iterable[str]) -> DataFrame:
    """Return the rows of ``frame`` whose partition is one of ``paths`` (a hash-set test:
    no join, and no local frame to ship)."""
    return frame.filter(partition_key(columns).isin(sorted(set(paths))))


def read_dataset(
    spark: SparkSession,
    root: str,
    layout: Layout,
    first: date | None = None,
    last: date | None = None,
) -> DataFrame:
    """Return the dataset under lake ``root``, pruned to dates ``first..last`` if given.

    A dataset that does not exist yet reads as empty. Only ``*.parquet`` files are read:
    Spark would otherwise descend into the exporter's ``_metadata/`` directories (it keeps
    ``_metadata`` names on purpose, for Parquet summary files).
    """
    uri = dataset_uri(root, layout.dataset)
    if not LakeFS(spark).exists(uri):
        return spark.createDataFrame([], layout.schema)
    frame = (
        spark.read.schema(layout.schema)
        .option("pathGlobFilter", "*.parquet")
        .option("basePath", uri)
        .parquet(uri)
    )
    if first is not None or last is not None:
        frame = frame.filter(date_between(first, last))
    return frame


def read_files(spark: SparkSession, root: str, layout: Layout, keys: Iterable[str]) -> DataFrame:
    """Return the given files of the dataset, with their partition columns.

    ``keys`` are lake keys (``bronze/events/date=.../part-....parquet``); those of other
    datasets are ignored, and none left reads as empty.
    """
    uri = dataset_uri(root, layout.dataset)
    prefix = layout.dataset.replace(".", "/", 1) + "/"
    paths = sorted(f"{root}/{key}" for key in keys if key.startswith(prefix))
    if not paths:
        return spark.createDataFrame([], layout.schema)
    return spark.read.schema(layout.schema).option("basePath", uri).parquet(*paths)


def read_partitions(
    spark: SparkSession, root: str, layout: Layout, partitions: Iterable[str]
) -> DataFrame:
    """Return the rows of the given partitions (``client_id=1/date=...``) of the dataset.

    Only those directories are listed and read; none given reads as empty.
    """
    uri = dataset_uri(root, layout.dataset)
    paths = sorted(f"{uri}/{partition}" for partition in partitions)
    if not paths:
        return spark.createDataFrame([], layout.schema)
    return (
        spark.read.schema(layout.schema)
        .option("pathGlobFilter", "*.parquet")
        .option("basePath", uri)
        .parquet(*paths)
    )
