"""Bronze datasets as data: columns with exact Arrow types, partitioning and time column.

Pure module: imports neither Django nor pyspark. Which model feeds a dataset, and which
model field feeds each column, is configuration (`DATALAKE_SOURCES`, see conf.py).
"""

from dataclasses import dataclass, field

import pyarrow as pa

SCHEMA_VERSION = 1
MONEY = pa.decimal128(20, 8)
SLIPPAGE = pa.decimal128(10, 4)
TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Dataset:
    """One bronze dataset: its columns, how it is partitioned, and its rules."""

    name: str
    columns: tuple[tuple[str, pa.DataType], ...]
    cursor: str  # monotonic integer column assigned at insert (event_seq, id)
    time_column: str  # UTC timestamp that gives the date partition
    partition_by: tuple[str, ...]  # columns moved from the file into the path, then `date`
    required: tuple[str, ...] = ()
    enums: dict[str, frozenset[str]] = field(default_factory=dict)
    non_negative: tuple[str, ...] = ()
    symbol_columns: tuple[str, ...] = ()
    json_columns: tuple[str, ...] = ()

    @property
    def schema(self) -> pa.Schema:
        """Return the full row schema, partition columns included."""
        return pa.schema([pa.field(name, dtype) for name, dtype in self.columns])

    @property
    def file_schema(self) -> pa.Schema:
        """Return the schema of the Parquet files: partition columns live in the path."""
        return pa.schema([pa.field(n, t) for n, t in self.columns if n not in self.partition_by])

    @property
    def prefix(self) -> str:
        return f"bronze/{self.name}"


SYMBOL_PATTERN = r"^[A-Z0-9]{2,15}(USDC|USDT|BTC|ETH|BNB|FDUSD|EUR|BRL)$"
SIDES = frozenset({"BUY", "SELL"})
ORDER_TYPES = frozenset({"SPOT_BUY", "SPOT_SELL", "MARGIN_BUY", "MARGIN_SELL"})

EVENTS = Dataset(
    name="events",
    columns=(
        ("event_id", pa.string()),
        ("event_seq", pa.int64()),
        ("occurred_at", TIMESTAMP),
        ("operation_id", pa.int64()),
        ("client_id", pa.int64()),
        ("symbol", pa.string()),
        ("event_type", pa.string()),
        ("trigger_price", MONEY),
        ("stop_price", MONEY),
        ("quantity", MONEY),
        ("side", pa.string()),
        ("execution_token", pa.string()),
        ("payload_json", pa.string()),
        ("exchange_order_id", pa.string()),
        ("fill_price", MONEY),
        ("slippage_pct", SLIPPAGE),
        ("source", pa.string()),
        ("error_message", pa.string()),
        ("retry_count", pa.int32()),
    ),
    cursor="event_seq",
    time_column="occurred_at",
    partition_by=(),
    required=(
        "event_id",
        "event_seq",
        "occurred_at",
        "operation_id",
        "client_id",
        "symbol",
        "event_type",
        "source",
    ),
    enums={
        "event_type": frozenset(
            {
                "STOP_TRIGGERED",
                "EXECUTION_SUBMITTED",
                "EXECUTED",
                "FAILED",
                "BLOCKED",
                "STALE_PRICE",
                "KILL_SWITCH",
                "SLIPPAGE_BREACH",
                "CIRCUIT_BREAKER",
            }
        ),
        "side": SIDES,
        "source": frozenset({"ws", "cron", "manual"}),
    },
    non_negative=("trigger_price", "stop_price", "quantity", "fill_price", "retry_count"),
    symbol_columns=("symbol",),
    json_columns=("payload_json",),
)

ORDERS = Dataset(
    name="orders",
    columns=(
        ("id", pa.int64()),
        ("transaction_id", pa.string()),
        ("client_id", pa.int64()),
        ("related_operation_id", pa.int64()),
        ("strategy_id", pa.int64()),
        ("transaction_type", pa.string()),
        ("status", pa.string()),
        ("symbol", pa.string()),
        ("asset", pa.string()),
        ("quantity", MONEY),
        ("price", MONEY),
        ("total_value", MONEY),
        ("fee", MONEY),
        ("fee_asset", pa.string()),
        ("side", pa.string()),
        ("leverage", pa.int32()),
        ("account_type", pa.string()),
        ("category", pa.string()),
        ("description", pa.string()),
        ("raw_response", pa.string()),
        ("created_at", TIMESTAMP),
        ("executed_at", TIMESTAMP),
        ("source", pa.string()),
    ),
    cursor="id",
    time_column="created_at",
    partition_by=("client_id",),
    required=(
        "id",
        "transaction_id",
        "client_id",
        "transaction_type",
        "status",
        "symbol",
        "quantity",
        "created_at",
    ),
    enums={
        "transaction_type": ORDER_TYPES,
        "status": frozenset({"PENDING", "FILLED", "PARTIALLY_FILLED", "CANCELLED", "FAILED"}),
        "side": SIDES,
    },
    non_negative=("quantity", "price", "total_value", "fee"),
    symbol_columns=("symbol",),
    json_columns=("raw_response",),
)

TRADES = Dataset(
    name="trades",
    columns=(
        ("row_id", pa.int64()),
        ("client_id", pa.int64()),
        ("symbol", pa.string()),
        ("id", pa.int64()),
        ("orderId", pa.int64()),
        ("orderListId", pa.int64()),
        ("price", MONEY),
        ("qty", MONEY),
        ("quoteQty", MONEY),
        ("commission", MONEY),
        ("commissionAsset", pa.string()),
        ("time", TIMESTAMP),
        ("isBuyer", pa.bool_()),
        ("isMaker", pa.bool_()),
        ("isBestMatch", pa.bool_()),
    ),
    cursor="row_id",
    time_column="time",
    partition_by=(),
    required=("row_id", "client_id", "symbol", "id", "orderId", "price", "qty", "time"),
    non_negative=("price", "qty", "quoteQty", "commission"),
    symbol_columns=("symbol",),
)

PORTFOLIO = Dataset(
    name="portfolio",
    columns=(
        ("id", pa.int64()),
        ("client_id", pa.int64()),
        ("timestamp", TIMESTAMP),
        ("quote_asset", pa.string()),
        ("total_value", MONEY),
        ("cash", MONEY),
        ("balances", pa.string()),
    ),
    cursor="id",
    time_column="timestamp",
    partition_by=("client_id",),
    required=("id", "client_id", "timestamp", "total_value", "cash"),
    non_negative=("total_value",),
    json_columns=("balances",),
)

KLINES = Dataset(
    name="klines",
    columns=(
        ("row_id", pa.int64()),
        ("symbol", pa.string()),
        ("interval", pa.string()),
        ("open_time", TIMESTAMP),
        ("open", MONEY),
        ("high", MONEY),
        ("low", MONEY),
        ("close", MONEY),
        ("volume", MONEY),
        ("close_time", TIMESTAMP),
        ("quote_asset_volume", MONEY),
        ("number_of_trades", pa.int64()),
        ("taker_buy_base_asset_volume", MONEY),
        ("taker_buy_quote_asset_volume", MONEY),
    ),
    cursor="row_id",
    time_column="open_time",
    partition_by=(),
    required=(
        "row_id",
        "symbol",
        "interval",
        "open_time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "close_time",
        "quote_asset_volume",
        "number_of_trades",
    ),
    # One-minute candles only: the gold windows (15 minutes, 24 hours) count in minutes.
    enums={"interval": frozenset({"1m"})},
    non_negative=(
        "open",
        "high",
        "low",
        "close",
        "volume",
        "quote_asset_volume",
        "number_of_trades",
        "taker_buy_base_asset_volume",
        "taker_buy_quote_asset_volume",
    ),
    symbol_columns=("symbol",),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in (EVENTS, ORDERS, TRADES, PORTFOLIO, KLINES)}


def get_dataset(name: str) -> Dataset:
    """Return the dataset called `name`, or raise KeyError naming the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(
            f"unknown bronze dataset {name!r}; known: {', '.join(sorted(DATASETS))}"
        ) from None
