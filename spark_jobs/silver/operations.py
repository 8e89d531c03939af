"""silver.operations: one row per operation (position), from bronze.orders + stop executions.

An operation is every order audit row with the same ``related_operation_id``. Only fills
count (status FILLED or PARTIALLY_FILLED, with a price and a quantity): the operation's
side is the side of its first fill, entry fills are the fills on that side, exit fills
the ones on the other side.

Money is Decimal(20, 8) in and out, and every money column is the exact result rounded
once, half even, at 8 places (see "Exact money" below).

- ``quantity`` (position size) = Σ entry qty; ``exit_quantity`` = Σ exit qty.
- ``entry_price`` = Σ(price·qty) / Σ qty over entry fills; ``exit_price`` likewise.
- ``fees`` = Σ fees converted to the quote asset: a fee in the quote asset counts as is, a
  fee in the base asset at its fill's price, a fee in a third asset (BNB) at the price of
  the last fill of that asset against the same quote (BNBUSDC) at or before the fee's
  fill, in bronze.orders. With no such earlier price the fee is left out of ``fees`` and
  its asset listed in ``unconverted_fee_assets`` (a warning check counts them). A later
  price is not used: the operation would change when another operation's order arrives,
  which an incremental run (scoped to operations with new orders) would not pick up.
- ``realized_pnl`` = sign * (exit_price - entry_price) * exit_quantity - fees, with sign +1
  for a BUY (long) and -1 for a SELL (short) operation, the prices being the exact
  averages (not the rounded columns); null while nothing was exited.
- ``status`` CLOSED once exit_quantity ≥ quantity, else OPEN.
- ``stop_fired``: silver.stop_executions has an EXECUTED execution for the operation.

Exact money (:mod:`spark_jobs.common.decimals`): price·qty and converted fees are exact at
16 places (decimal(37,16): up to 10^21 per fill), summed exactly; averages are exact
quotients rounded once. With E = Σ entry notional, Q = Σ entry qty, X / q the exit ones,
E = a·Q + b (a: the average truncated at 8 places, 0 <= b < Q·10^-8), so

    realized_pnl = sign·(X - a·q - b·q/Q) - fees

where a·q is exact at 16 places and b·q/Q (below q·10^-8) is split into its truncation t
at 16 places and a rest ε in [0, 10^-16). Y = sign·(X - a·q - t) - fees is exact; the rest
only decides a tie of Y at 8 places (which side of it the exact value lies on). When q = Q
the cost is E itself. Ranges: a leg's Σ notional < 10^21; for a partial (or over-) exit
also b·q < 10^12, i.e. Q·q < 10^20 (quantities up to 10^10 units). Beyond them the value
is null and the warning check ``money_in_exact_range`` counts the operation.

Values a run cannot type are counted by the warning check ``untypeable_values`` (with an
example) instead of failing the run: a ``raw_response.$.strategy_id`` that is not a whole
number is nulled (attribution falls through to the stop events); a fill whose price·qty
or converted fee does not fit decimal(37,16) is left out of its operation (and of the
reconciliation count).

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

from pyspark.sql import Column, DataFrame, Observation, SparkSession, Window
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
from spark_jobs.common.checks import (
    Check,
    CountCheck,
    RowCheck,
    UniqueCheck,
    UntypeableCheck,
    not_null,
    observe_untypeable,
)
from spark_jobs.common.config import JobConfig
from spark_jobs.common.datasets import MONEY, Layout, read_dataset
from spark_jobs.common.decimals import (
    Quotient,
    divide,
    multiply,
    round_half_even,
    round_nudged,
    typed,
)
from spark_jobs.common.lake import partition_paths
from spark_jobs.common.output import Output, write_checked
from spark_jobs.common.report import Report
from spark_jobs.silver import stop_executions

DATASET = "silver.operations"
UNATTRIBUTED = 0  # strategy_id of operations whose strategy bronze does not tell
FILLED = ("FILLED", "PARTIALLY_FILLED")
QUOTE_ASSETS = ("USDC", "USDT", "FDUSD", "BTC", "ETH", "BNB", "EUR", "BRL")

# Exact price·qty, converted fees and their sums: 16 places, 21 integer digits (two of
# them add up within 38 digits).
NOTIONAL = DecimalType(37, 16)
# An average truncated at 8 places (below 10^13), and its remainder b < Q·10^-8 < 10^4.
TRUNCATED = DecimalType(21, 8)
REMAINDER = DecimalType(20, 16)
# b·q: 24 places, below 10^13 while Q·q < 10^21.
REMAINDER_PRODUCT = DecimalType(37, 24)
UNTYPEABLE = ("strategy_id", "fill_amount")

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


def fills(orders: DataFrame, untypeable: Observation | None = None) -> DataFrame:
    """Return the fills among ``orders`` (one row per order id), with their fee in quote,
    when they filled (``filled_at``) and when the order was placed (``created_at``).

    A fee in the quote asset counts as is, one in the base asset at the fill's price. A
    fee in a third asset (BNB) is valued at the last fill of that asset against the same
    quote (BNBUSDC) at or before the fee's fill; with no such earlier fill in bronze it
    stays unconverted (``unconverted_asset``). An order without a side takes it from its
    type (``SPOT_BUY`` buys). ``notional`` is price·qty and ``fee_quote`` the converted
    fee, both exact (:data:`NOTIONAL`). A fill whose amounts do not fit is left out, and
    counted into ``untypeable`` if given, as is a raw_response strategy_id that is not a
    whole number (nulled).
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
    fee = F.coalesce(F.col("fee"), F.lit(0).cast(MONEY))
    raw_strategy = F.get_json_object("raw_response", "$.strategy_id")
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
        multiply(F.col("price"), F.col("quantity"), MONEY, MONEY).alias("notional"),
        F.when(fee == 0, F.lit(0).cast(NOTIONAL))
        .when(fee_asset == quote, fee.cast(NOTIONAL))
        .when(fee_asset == F.col("asset"), multiply(fee, F.col("price"), MONEY, MONEY))
        .alias("_direct_fee"),
        F.coalesce(
            (fee == 0) | (fee_asset == quote) | (fee_asset == F.col("asset")), F.lit(False)
        ).alias("_direct"),
        fee_asset.alias("_fee_asset"),
        F.when(fee != 0, F.concat(fee_asset, quote)).alias("_fee_pair"),
        F.coalesce(F.col("strategy_id"), typed(raw_strategy, LongType())).alias(
            "order_strategy_id"
        ),
        (raw_strategy.isNotNull() & typed(raw_strategy, LongType()).isNull()).alias(
            "_bad_strategy"
        ),
        raw_strategy.alias("_raw_strategy"),
    )
    priced = _with_fee_prices(rows)
    fee_quote = F.when(F.col("_direct"), F.col("_direct_fee")).otherwise(
        multiply(F.col("fee"), F.col("_fee_price"), MONEY, MONEY)
    )
    converted = F.col("_direct") | F.col("_fee_price").isNotNull()
    checked = priced.filter(F.col("operation_id").isNotNull()).select(
        "*",
        fee_quote.alias("fee_quote"),
        (F.col("notional").isNull() | (converted & fee_quote.isNull())).alias("_bad_amount"),
    )
    if untypeable is not None:
        shown_fill = F.format_string(
            "order %d: %s x %s, fee %s %s",
            "id",
            F.col("price").cast("string"),
            F.col("quantity").cast("string"),
            F.col("fee").cast("string"),
            "_fee_asset",
        )
        checked = observe_untypeable(
            checked,
            untypeable,
            {
                "strategy_id": (F.col("_bad_strategy"), F.col("_raw_strategy")),
                "fill_amount": (F.col("_bad_amount"), shown_fill),
            },
        )
    return checked.filter(~F.col("_bad_amount")).select(
        "operation_id",
        "id",
        "client_id",
        "symbol",
        "side",
        "quantity",
        "price",
        "notional",
        "filled_at",
        "created_at",
        F.when(converted, F.col("fee_quote")).alias("fee_quote"),
        F.when(~converted, F.col("_fee_asset")).alias("unconverted_asset"),
        "order_strategy_id",
    )


def _with_fee_prices(rows: DataFrame) -> DataFrame:
    """Add ``_fee_price``: the last price of the fee asset at or before the fill (null if
    none), for the fills that need one.

    One pass over ``rows``: every fill is a price point of its own symbol, and a fill that
    needs a fee price is also a query on its fee pair's timeline (``_kind`` 1, sorting
    after a price point at the same instant). Read once, the fills are not deduplicated
    again for each use (three reads cost three times as much at 1M orders).
    """
    needs_price = ~F.col("_direct") & F.col("_fee_pair").isNotNull()
    point = F.struct(F.col("symbol").alias("_pair"), F.lit(0).alias("_kind"))
    query = F.struct(F.col("_fee_pair").alias("_pair"), F.lit(1).alias("_kind"))
    roles = F.when(needs_price, F.array(point, query)).otherwise(F.array(point))
    timeline = (
        Window.partitionBy("_pair")
        .orderBy("filled_at", "_kind")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    price = F.last(F.when(F.col("_kind") == 0, F.col("price")), ignorenulls=True).over(timeline)
    return (
        rows.select("*", F.inline(roles))
        .withColumn("_fee_price", F.when(F.col("_kind") == 1, price).cast(MONEY))
        .filter((F.col("_kind") == 1) | ~needs_price)
        .select(*rows.columns, "_fee_price")
    )


def build_operations(
    orders: DataFrame,
    executions: DataFrame,
    built_at: datetime,
    untypeable: Observation | None = None,
) -> DataFrame:
    """Summarise bronze ``orders`` per operation (schema :data:`SCHEMA`).

    ``executions`` is silver.stop_executions (operation_id, status, strategy_id are used).
    ``built_at`` becomes ``created_at``. Values that cannot be typed are counted into
    ``untypeable`` (see :func:`fills`).
    """
    order = F.struct("filled_at", "id")
    # One shuffle: fills clustered by operation serve both aggregations below.
    legs = (
        fills(orders, untypeable)
        .repartition("operation_id")
        .groupBy("operation_id", "side")
        .agg(
            F.min(order).alias("_first"),
            F.min_by("client_id", order).alias("client_id"),
            F.min_by("symbol", order).alias("symbol"),
            # Sums are exact; one past its type is null (try_sum), never an error.
            typed(F.try_sum("quantity"), MONEY).alias("qty"),
            typed(F.try_sum("notional"), NOTIONAL).alias("notional"),
            F.min("filled_at").alias("first_at"),
            F.max("filled_at").alias("last_at"),
            typed(F.try_sum(F.coalesce("fee_quote", F.lit(0).cast(NOTIONAL))), NOTIONAL).alias(
                "fees"
            ),
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
        typed(F.try_sum("fees"), NOTIONAL).alias("fees"),
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
    entry = divide(F.col("entry.notional"), qty_in, NOTIONAL, MONEY, 8)
    exit_ = divide(F.col("exit.notional"), qty_out, NOTIONAL, MONEY, 8)
    closed = qty_in.isNotNull() & (F.coalesce(qty_out, F.lit(0)) >= qty_in)
    return summary.select(
        "operation_id",
        "client_id",
        "symbol",
        "side",
        F.when(closed, "CLOSED").otherwise("OPEN").alias("status"),
        qty_in.alias("quantity"),
        round_half_even(entry, MONEY).alias("entry_price"),
        F.col("entry.first_at").alias("entry_time"),
        qty_out.alias("exit_quantity"),
        round_half_even(exit_, MONEY).alias("exit_price"),
        F.when(closed, F.col("exit.last_at")).alias("exit_time"),
        typed(F.bround("fees", 8), MONEY).alias("fees"),
        "unconverted_fee_assets",
        realized_pnl(
            entry,
            F.col("entry.notional"),
            F.col("exit.notional"),
            qty_in,
            qty_out,
            F.col("fees"),
        ).alias("realized_pnl"),
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


def realized_pnl(
    entry: Quotient,
    notional_in: Column,
    notional_out: Column,
    qty_in: Column,
    qty_out: Column,
    fees: Column,
) -> Column:
    """Return sign·(notional_out - entry average·qty_out) - fees, exact, rounded once.

    ``entry`` is notional_in / qty_in as (a, b); see the module docstring. A position
    closed by exactly its quantity costs notional_in, whatever its size.
    """
    a_q = multiply(entry.truncated, qty_out, TRUNCATED, MONEY)  # decimal(37,16), exact
    b_q = multiply(entry.remainder, qty_out, REMAINDER, MONEY)  # decimal(37,24), exact
    rest = divide(b_q, qty_in, REMAINDER_PRODUCT, MONEY, 16)  # t + ε/qty_in
    whole = qty_out == qty_in
    cost = F.when(whole, notional_in).otherwise(typed(a_q + rest.truncated, NOTIONAL))
    move = typed(notional_out - cost, NOTIONAL)
    sign = F.when(F.col("side") == "BUY", F.lit(1)).otherwise(F.lit(-1))
    y = F.when(sign > 0, move).otherwise(-move) - fees  # decimal(38,16), exact
    # The exact PnL is y - sign·ε, ε with the sign of the remainder (none if whole).
    nudge = F.when(whole, F.lit(0)).otherwise(-sign * F.signum(rest.remainder))
    return round_nudged(y, nudge, 8, MONEY)


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


def quality_checks(expected_rows: int, untypeable: Observation | None = None) -> list[Check]:
    """Return the contract of silver.operations (``untypeable``: see :func:`fills`)."""
    observed: list[Check] = [] if untypeable is None else [UntypeableCheck(untypeable, UNTYPEABLE)]
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
            "money_in_exact_range",
            F.col("quantity").isNull()
            | F.col("entry_price").isNull()
            | F.col("fees").isNull()
            | (
                F.col("exit_quantity").isNotNull()
                & (F.col("exit_price").isNull() | F.col("realized_pnl").isNull())
            ),
            "operations with money beyond the range computed exactly (nulled)",
            critical=False,
        ),
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
        *observed,
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

    untypeable = Observation()
    operations = build_operations(
        orders, executions, built_at=datetime.now(UTC), untypeable=untypeable
    ).persist()
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
        checks = quality_checks(expected_operations(orders, selected), untypeable)
        output = Output(config.output, OUTPUT.partition_by, OUTPUT.sort_by)
        write_checked(spark, config, selected, output, checks, report, also_replace=replace)
    finally:
        operations.unpersist()
