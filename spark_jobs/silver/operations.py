"""silver.operations: one row per operation (position), from bronze.orders + stop executions.

An operation is every order audit row with the same ``related_operation_id``. Only fills
count (status FILLED or PARTIALLY_FILLED, with a price and a quantity): the operation's
side is the side of its first fill, entry fills are the fills on that side, exit fills
the ones on the other side.

Money is Decimal(20, 8) in and out. In between, casts keep Spark's decimal arithmetic
from cutting scales (left alone, a weighted average would keep only 6 places): price·qty
keeps 13 places, averages 12, PnL 9, then everything is rounded half-up to 8.

- ``quantity`` (position size) = Σ entry qty; ``exit_quantity`` = Σ exit qty.
- ``entry_price`` = Σ(price·qty) / Σ qty over entry fills; ``exit_price`` likewise.
- ``fees`` = Σ fees converted to the quote asset: a fee in the quote asset counts as is, a
  fee in the base asset at its fill's price, a fee in a third asset (BNB) at the as-of
  price of that asset's own fills in bronze.orders (BNBUSDC). A fee with no such price is
  left out of ``fees``; its asset is listed in ``unconverted_fee_assets``.
- ``realized_pnl`` = sign * (exit_price - entry_price) * exit_quantity - fees, with sign +1
  for a BUY (long) and -1 for a SELL (short) operation; null while nothing was exited.
- ``status`` CLOSED once exit_quantity ≥ quantity, else OPEN.
- ``stop_fired``: silver.stop_executions has an EXECUTED execution for the operation.

``strategy_id`` (a partition column) is not exported in bronze.orders today. It is taken,
in order, from: a ``strategy_id`` column of bronze.orders (read as null until the exporter
adds it), ``$.strategy_id`` in the order's raw_response, the ``strategy_id`` that the stop
events' payload carries (silver.stop_executions), else :data:`UNATTRIBUTED` (0).

Partitions: ``strategy_id`` / ``date`` = UTC date of the first entry fill. Every run reads
all of bronze.orders (an operation may stay open for days; orders are few). An incremental
run (``--dates``) recomputes every operation with an order or a stop event on those dates
and rewrites their partitions whole. Whatever the scope, the partition an operation was published in
before is rewritten too: its strategy may have become known since, and it must not stay
behind in the old partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from spark_jobs.common.bronze import BRONZE_EVENTS, BRONZE_ORDERS
from spark_jobs.common.checks import Check, CountCheck, RowCheck, UniqueCheck, not_null
from spark_jobs.common.config import JobConfig
from spark_jobs.common.datasets import MONEY, Layout, read_dataset
from spark_jobs.common.lake import partition_paths
from spark_jobs.common.output import Output, write_checked
from spark_jobs.common.report import Report
from spark_jobs.silver import stop_executions

DATASET = "silver.operations"
UNATTRIBUTED = 0  # strategy_id of operations whose strategy bronze does not tell
FILLED = ("FILLED", "PARTIALLY_FILLED")
QUOTE_ASSETS = ("USDC", "USDT", "FDUSD", "BTC", "ETH", "BNB", "EUR", "BRL")

# Intermediate types (see the module docstring): sums of price·qty, averages, fees.
NOTIONAL = DecimalType(31, 13)
AVERAGE = DecimalType(26, 12)
FEE = DecimalType(28, 10)

SCHEMA = StructType(
    [
        StructField("operation_id", LongType()),
        StructField("client_id", LongType()),
        StructField("symbol", StringType()),
        StructField("side", StringType()),
        StructField("status", StringType()),
        StructField("quantity", MONEY),
        StructField("entry_price", MONEY),
        StructField("entry_time", TimestampType()),
        StructField("exit_quantity", MONEY),
        StructField("exit_price", MONEY),
        StructField("exit_time", TimestampType()),
        StructField("fees", MONEY),
        StructField("unconverted_fee_assets", ArrayType(StringType())),
        StructField("realized_pnl", MONEY),
        StructField("stop_fired", BooleanType()),
        StructField("stop_execution_count", IntegerType()),
        StructField("fill_count", IntegerType()),
        StructField("created_at", TimestampType()),
        StructField("strategy_id", LongType()),
        StructField("date", DateType()),
    ]
)
OUTPUT = Output(DATASET, ("strategy_id", "date"), sort_by=("entry_time", "operation_id"))
PARTITIONS = OUTPUT.partition_by
LAYOUT = Layout(DATASET, SCHEMA, PARTITIONS)


# --- transform ---------------------------------------------------------------------------


def quote_asset(symbol: Column, base: Column) -> Column:
    """Return the quote asset of ``symbol``: what follows the base asset, else a known suffix."""
    suffix = F.regexp_extract(symbol, "(" + "|".join(QUOTE_ASSETS) + ")$", 1)
    after_base = F.when(
        base.isNotNull() & symbol.startswith(base), symbol.substr(F.length(base) + 1, F.lit(64))
    )
    return F.coalesce(F.nullif(after_base, F.lit("")), F.nullif(suffix, F.lit("")))


def fills(orders: DataFrame) -> DataFrame:
    """Return the fills among ``orders`` (one row per order id), with their fee in quote,
    when they filled (``filled_at``) and when the order was placed (``created_at``).

    A fee in the quote asset counts as is, one in the base asset at the fill's price. A
    fee in a third asset (BNB) is valued at the last fill of that asset against the same
    quote (BNBUSDC) at or before the fee's fill, else the first one after it; with no
    such fill in bronze it stays unconverted (``unconverted_asset``). An order without a
    side takes it from its type (``SPOT_BUY`` buys).
    """
    kind = F.col("transaction_type")
    side = F.coalesce(
        F.col("side"),
        F.when(kind.endswith("_BUY"), F.lit("BUY")).when(kind.endswith("_SELL"), F.lit("SELL")),
    )
    filled = orders.filter(
        F.col("status").isin(*FILLED) & (F.col("quantity") > 0) & F.col("price").isNotNull()
    ).dropDuplicates(["id"])
    quote = quote_asset(F.col("symbol"), F.col("asset"))
    fee_asset = F.coalesce(F.col("fee_asset"), quote)
    fee = F.coalesce(F.col("fee"), F.lit(0))
    rows = filled.filter(side.isNotNull()).select(
        F.col("related_operation_id").alias("operation_id"),
        "id",
        "client_id",
        "symbol",
        side.alias("side"),
        "quantity",
        "price",
        F.coalesce("executed_at", "created_at").alias("filled_at"),
        "created_at",
        fee.alias("fee"),
        F.when(fee == 0, F.lit(0))
        .when(fee_asset == quote, fee)
        .when(fee_asset == F.col("asset"), fee * F.col("price"))
        .cast(FEE)
        .alias("_direct_fee"),
        fee_asset.alias("_fee_asset"),
        F.when(fee != 0, F.concat(fee_asset, quote)).alias("_fee_pair"),
        F.coalesce(
            F.col("strategy_id"),
            F.get_json_object("raw_response", "$.strategy_id").cast(LongType()),
        ).alias("order_strategy_id"),
    )
    priced = _with_fee_prices(rows)
    fee_quote = F.coalesce("_direct_fee", (F.col("fee") * F.col("_fee_price")).cast(FEE))
    return priced.filter(F.col("operation_id").isNotNull()).select(
        "operation_id",
        "id",
        "client_id",
        "symbol",
        "side",
        "quantity",
        "price",
        "filled_at",
        "created_at",
        fee_quote.alias("fee_quote"),
        F.when(fee_quote.isNull(), F.col("_fee_asset")).alias("unconverted_asset"),
        "order_strategy_id",
    )


def _with_fee_prices(rows: DataFrame) -> DataFrame:
    """Add ``_fee_price``: the as-of price of the fee asset, for the fills that need one.

    Those fills and the price points of their pairs are sorted together on one timeline
    per pair; the fills that need no price skip that shuffle.
    """
    needs_price = F.col("_direct_fee").isNull() & F.col("_fee_pair").isNotNull()
    needs = rows.filter(needs_price)
    pairs = needs.select(F.col("_fee_pair").alias("_pair")).distinct()
    points = rows.select(
        F.col("symbol").alias("_pair"),
        F.col("filled_at").alias("_at"),
        F.lit(0).alias("_kind"),  # a price point sorts before a fee at the same instant
        F.col("price").alias("_point"),
    ).join(pairs, "_pair", "left_semi")
    wanted = needs.select(
        "*",
        F.col("_fee_pair").alias("_pair"),
        F.col("filled_at").alias("_at"),
        F.lit(1).alias("_kind"),
    )
    timeline = Window.partitionBy("_pair").orderBy("_at", "_kind")
    before = timeline.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    after = timeline.rowsBetween(Window.currentRow, Window.unboundedFollowing)
    price = F.coalesce(
        F.last("_point", ignorenulls=True).over(before),
        F.first("_point", ignorenulls=True).over(after),
    )
    priced = (
        points.unionByName(wanted, allowMissingColumns=True)
        .withColumn("_fee_price", price)
        .filter(F.col("_kind") == 1)
        .select(*rows.columns, "_fee_price")
    )
    direct = rows.filter(~needs_price).withColumn("_fee_price", F.lit(None).cast(MONEY))
    return direct.unionByName(priced)


def build_operations(orders: DataFrame, executions: DataFrame, built_at: datetime) -> DataFrame:
    """Summarise bronze ``orders`` per operation (schema :data:`SCHEMA`).

    ``executions`` is silver.stop_executions (operation_id, status, strategy_id are used).
    ``built_at`` becomes ``created_at``.
    """
    order = F.struct("filled_at", "id")
    # One shuffle: fills clustered by operation serve both aggregations below.
    legs = (
        fills(orders)
        .repartition("operation_id")
        .groupBy("operation_id", "side")
        .agg(
            F.min(order).alias("_first"),
            F.min_by("client_id", order).alias("client_id"),
            F.min_by("symbol", order).alias("symbol"),
            F.sum("quantity").alias("qty"),
            F.sum(F.col("price") * F.col("quantity")).alias("notional"),
            F.min("filled_at").alias("first_at"),
            F.max("filled_at").alias("last_at"),
            F.sum(F.coalesce("fee_quote", F.lit(0))).alias("fees"),
            F.collect_set("unconverted_asset").alias("unconverted"),
            F.max("order_strategy_id").alias("order_strategy_id"),
            F.count(F.lit(1)).alias("fills"),
        )
    )
    # The side filled first is the entry leg; the other one, if any, the exit leg.
    leg = F.struct("qty", "notional", "first_at", "last_at")
    summary = legs.groupBy("operation_id").agg(
        F.min_by("side", "_first").alias("side"),
        F.min_by("client_id", "_first").alias("client_id"),
        F.min_by("symbol", "_first").alias("symbol"),
        F.min_by(leg, "_first").alias("entry"),
        F.when(F.count(F.lit(1)) > 1, F.max_by(leg, "_first")).alias("exit"),
        F.sum("fees").alias("fees"),
        F.array_sort(F.array_distinct(F.flatten(F.collect_list("unconverted")))).alias(
            "unconverted_fee_assets"
        ),
        F.max("order_strategy_id").alias("order_strategy_id"),
        F.sum("fills").alias("fill_count"),
    )
    stops = executions.groupBy("operation_id").agg(
        F.bool_or(F.col("status") == "EXECUTED").alias("stop_fired"),
        F.count(F.lit(1)).alias("stop_execution_count"),
        F.max("strategy_id").alias("stop_strategy_id"),
    )
    summary = summary.join(stops, "operation_id", "left")

    qty_in, qty_out = F.col("entry.qty"), F.col("exit.qty")
    entry_price = _average(F.col("entry.notional"), qty_in)
    exit_price = _average(F.col("exit.notional"), qty_out)
    move = exit_price - entry_price
    gross = F.when(F.col("side") == "BUY", move).otherwise(-move) * qty_out
    closed = qty_in.isNotNull() & (F.coalesce(qty_out, F.lit(0)) >= qty_in)
    return summary.select(
        "operation_id",
        "client_id",
        "symbol",
        "side",
        F.when(closed, "CLOSED").otherwise("OPEN").alias("status"),
        qty_in.cast(MONEY).alias("quantity"),
        entry_price.cast(MONEY).alias("entry_price"),
        F.col("entry.first_at").alias("entry_time"),
        qty_out.cast(MONEY).alias("exit_quantity"),
        exit_price.cast(MONEY).alias("exit_price"),
        F.when(closed, F.col("exit.last_at")).alias("exit_time"),
        F.col("fees").cast(MONEY).alias("fees"),
        "unconverted_fee_assets",
        (gross - F.col("fees")).cast(MONEY).alias("realized_pnl"),
        F.coalesce("stop_fired", F.lit(False)).alias("stop_fired"),
        F.coalesce("stop_execution_count", F.lit(0))
        .cast(IntegerType())
        .alias("stop_execution_count"),
        F.col("fill_count").cast(IntegerType()).alias("fill_count"),
        F.lit(built_at).cast(TimestampType()).alias("created_at"),
        F.coalesce("order_strategy_id", "stop_strategy_id", F.lit(UNATTRIBUTED))
        .cast(LongType())
        .alias("strategy_id"),
        F.to_date(F.col("entry.first_at")).alias("date"),
    )


def _average(notional: Column, quantity: Column) -> Column:
    """Return notional / quantity with 12 decimal places (null when quantity is 0/null)."""
    ratio = notional.cast(NOTIONAL) / quantity.cast(MONEY)
    return F.when(quantity > 0, ratio.cast(AVERAGE))


def moved_from(previous: DataFrame, operations: DataFrame) -> DataFrame:
    """Return the partitions where ``previous`` (the output as it stands) holds ``operations``.

    An operation can change partition (its strategy becomes known once its stop events
    are replayed): the partition it leaves is rewritten too, so it is never there twice.
    """
    ids = operations.select("operation_id")
    return previous.join(ids, "operation_id", "left_semi").select(*PARTITIONS).distinct()


def affected_by_dates(
    operations: DataFrame,
    orders: DataFrame,
    previous: DataFrame,
    dates: Sequence[date],
    events: DataFrame | None = None,
) -> tuple[DataFrame, list[str]]:
    """Return (operations to rewrite, partitions to rewrite) for new bronze on ``dates``.

    Those are the partitions of every operation with an order on one of the dates, or a
    stop event (in ``events``, bronze.events, if given: its stop may have fired), now
    and in ``previous``, each with all of its operations.
    """
    touched = orders.filter(F.col("date").isin(list(dates))).select(
        F.col("related_operation_id").alias("operation_id")
    )
    if events is not None:
        on_dates = events.filter(F.to_date("occurred_at").isin(list(dates)))
        touched = touched.unionByName(on_dates.select("operation_id"))
    touched = touched.distinct()
    touched_operations = operations.join(touched, "operation_id", "left_semi")
    partitions = (
        touched_operations.select(*PARTITIONS)
        .unionByName(moved_from(previous, touched_operations))
        .distinct()
    )
    selected = operations.join(partitions, list(PARTITIONS), "left_semi")
    return selected, partition_paths(PARTITIONS, partitions.collect())


def expected_operations(orders: DataFrame, operations: DataFrame) -> int:
    """Return how many distinct operation ids bronze fills hold for ``operations``."""
    ids = fills(orders).select("operation_id").distinct()
    return ids.join(operations.select("operation_id"), "operation_id", "left_semi").count()


def quality_checks(expected_rows: int) -> list[Check]:
    """Return the contract of silver.operations."""
    return [
        not_null("operation_id"),
        not_null("client_id"),
        not_null("status"),
        not_null("strategy_id"),
        UniqueCheck("operation_id_unique", ("operation_id",)),
        RowCheck(
            "entry_price_positive",
            F.col("entry_price").isNull() | (F.col("entry_price") <= 0),
            "rows without a positive entry_price",
        ),
        RowCheck(
            "closed_has_exit_and_pnl",
            (F.col("status") == "CLOSED")
            & (F.col("exit_price").isNull() | F.col("realized_pnl").isNull()),
            "CLOSED rows without exit_price or realized_pnl",
        ),
        CountCheck("row_count_matches_bronze", expected_rows, "bronze operation ids with fills"),
        RowCheck(
            "exit_not_above_position",
            F.col("exit_quantity") > F.col("quantity"),
            "operations that exited more than they entered",
            critical=False,
        ),
        RowCheck(
            "strategy_attributed",
            F.col("strategy_id") == UNATTRIBUTED,
            f"operations with strategy_id {UNATTRIBUTED} (unknown)",
            critical=False,
        ),
        RowCheck(
            "fees_converted",
            F.size("unconverted_fee_assets") > 0,
            "operations with fees not converted to the quote asset",
            critical=False,
        ),
    ]


# --- entry point -------------------------------------------------------------------------


def run(spark: SparkSession, config: JobConfig, report: Report) -> None:
    """Rebuild the partitions of silver.operations that the run's scope covers."""
    orders = read_dataset(spark, config.lake_uri, BRONZE_ORDERS)
    executions = read_dataset(spark, config.lake_uri, stop_executions.LAYOUT).select(
        "operation_id", "status", "strategy_id"
    )
    report.inputs["bronze.orders"] = orders.count()
    report.inputs["silver.stop_executions"] = executions.count()

    assert config.output
    current = read_dataset(spark, config.lake_uri, LAYOUT.renamed(config.output))
    previous = current.select("operation_id", *PARTITIONS)

    operations = build_operations(orders, executions, built_at=datetime.now(UTC)).persist()
    try:
        if config.mode == "dates":
            events = read_dataset(
                spark, config.lake_uri, BRONZE_EVENTS, config.dates[0], config.dates[-1]
            )
            selected, replace = affected_by_dates(
                operations, orders, previous, config.dates, events
            )
        else:
            selected, left = operations, moved_from(previous, operations)
            if config.mode == "range":
                in_range = F.col("date").between(config.start_date, config.end_date)
                selected, left = selected.filter(in_range), left.filter(in_range)
            replace = partition_paths(PARTITIONS, left.collect())
        checks = quality_checks(expected_operations(orders, selected))
        output = Output(config.output, OUTPUT.partition_by, OUTPUT.sort_by)
        write_checked(spark, config, selected, output, checks, report, also_replace=replace)
    finally:
        operations.unpersist()
