"""Bronze datasets as the exporter writes them: exact column types and partitions.

The columns are copied here, not imported: the jobs never import the Django side. If
``datalake/bronze/schemas.py`` gains a column, a job only sees it once it is added here.
Partition columns (``client_id``, ``date``) come last: they live in the paths.
"""

from __future__ import annotations

from pyspark.sql.types import (
    DataType,
    DateType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from spark_jobs.common.datasets import MONEY, SLIPPAGE, Layout


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

#: One-minute candles (Binance kline fields), partitioned by the date of open_time.
KLINES = _schema(
    ("row_id", LongType()),
    ("symbol", StringType()),
    ("interval", StringType()),
    ("open_time", TimestampType()),
    ("open", MONEY),
    ("high", MONEY),
    ("low", MONEY),
    ("close", MONEY),
    ("volume", MONEY),
    ("close_time", TimestampType()),
    ("quote_asset_volume", MONEY),
    ("number_of_trades", LongType()),
    ("taker_buy_base_asset_volume", MONEY),
    ("taker_buy_quote_asset_volume", MONEY),
    ("date", DateType()),
)


BRONZE_EVENTS = Layout("bronze.events", EVENTS, ("date",))
BRONZE_ORDERS = Layout("bronze.orders", ORDERS, ("client_id", "date"))
BRONZE_PORTFOLIO = Layout("bronze.portfolio", PORTFOLIO, ("client_id", "date"))
BRONZE_KLINES = Layout("bronze.klines", KLINES, ("date",))
