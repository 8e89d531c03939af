"""Read lake datasets; bronze ones with their exact types (copied from the exporter).

The columns are copied here, not imported: the jobs never import the Django side. If
``datalake/bronze/schemas.py`` gains a column, a job only sees it once it is added here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DataType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from spark_jobs.common.lake import LakeFS, dataset_uri

MONEY = DecimalType(20, 8)
SLIPPAGE = DecimalType(10, 4)


def _schema(*columns: tuple[str, DataType]) -> StructType:
    return StructType([StructField(name, dtype, True) for name, dtype in columns])


EVENTS = _schema(
    ("event_id", StringType()),
    ("event_seq", LongType()),
    ("occurred_at", TimestampType()),
    ("operation_id", LongType()),
    ("client_id", LongType()),
    ("symbol", StringType()),
    ("event_type", StringType()),
    ("trigger_price", MONEY),
    ("stop_price", MONEY),
    ("quantity", MONEY),
    ("side", StringType()),
    ("execution_token", StringType()),
    ("payload_json", StringType()),
    ("exchange_order_id", StringType()),
    ("fill_price", MONEY),
    ("slippage_pct", SLIPPAGE),
    ("source", StringType()),
    ("error_message", StringType()),
    ("retry_count", IntegerType()),
    ("date", DateType()),
)

ORDERS = _schema(
    ("id", LongType()),
    ("transaction_id", StringType()),
    ("related_operation_id", LongType()),
    ("transaction_type", StringType()),
    ("status", StringType()),
    ("symbol", StringType()),
    ("asset", StringType()),
    ("quantity", MONEY),
    ("price", MONEY),
    ("total_value", MONEY),
    ("fee", MONEY),
    ("fee_asset", StringType()),
    ("side", StringType()),
    ("leverage", IntegerType()),
    ("account_type", StringType()),
    ("category", StringType()),
    ("description", StringType()),
    ("raw_response", StringType()),
    ("created_at", TimestampType()),
    ("executed_at", TimestampType()),
    ("source", StringType()),
    # Optional: not exported today. Read as null until the exporter adds it.
    ("strategy_id", LongType()),
    ("client_id", LongType()),
    ("date", DateType()),
)

PORTFOLIO = _schema(
    ("id", LongType()),
    ("timestamp", TimestampType()),
    ("quote_asset", StringType()),
    ("total_value", MONEY),
    ("cash", MONEY),
    ("balances", StringType()),
    ("client_id", LongType()),
    ("date", DateType()),
)


@dataclass(frozen=True)
class Layout:
    """A dataset on the lake: its dotted name, full schema, and partition columns."""

    dataset: str
    schema: StructType
    partition_by: tuple[str, ...]

    def renamed(self, dataset: str) -> Layout:
        """Return the same layout for another dataset name (``silver.x_v2``)."""
        return Layout(dataset, self.schema, self.partition_by)


BRONZE_EVENTS = Layout("bronze.events", EVENTS, ("date",))
BRONZE_ORDERS = Layout("bronze.orders", ORDERS, ("client_id", "date"))
BRONZE_PORTFOLIO = Layout("bronze.portfolio", PORTFOLIO, ("client_id", "date"))


def date_between(first: date | None, last: date | None) -> Column:
    """Return a filter on the ``date`` partition column (None bounds are open)."""
    condition = F.lit(True)
    if first is not None:
        condition = condition & (F.col("date") >= F.lit(first))
    if last is not None:
        condition = condition & (F.col("date") <= F.lit(last))
    return condition


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
