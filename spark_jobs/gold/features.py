"""The stop-execution features: one definition, used by every job that computes them.

Each feature is described as data (:data:`FEATURES`: name, type, unit, window, null
policy) and computed by :func:`compute_features` from four inputs, each a frame that
carries a scope column (:data:`SCOPE`):

- ``samples``: (scope, sample_key, client_id, symbol, operation_id, stop_price, t);
- ``fills``: (scope, operation_id, id, side, price, quantity, created_at, filled_at),
  the operation's order fills (see :func:`fills_input`);
- ``klines``: (scope, symbol, close_time, close, quote_asset_volume), one-minute candles;
- ``resolutions``: (scope, client_id, resolved_at, failed), one row per execution that
  reached a final status (see :func:`resolutions_input`).

A sample only ever meets input rows of its own scope. The training-set job puts
everything in one scope; the leakage recheck gives each sample its own scope holding the
inputs cut at that sample's ``t`` (:func:`cut_at`), then calls the same function: the
two must agree exactly, or a feature used something known at or after ``t``.

Every window is half-open and ends before ``t``: ``[t - w, t)``. Point-in-time joins never
compare every sample with every row: the samples' query points are sorted into one
timeline per symbol (klines) and per client (resolutions), where a query at ``x`` sorts
before a row at ``x`` and so sees only rows strictly before ``x``. The 15-minute window is
a range frame ending just before ``t``; the 24-hour and 1-hour windows are differences of
running values at ``t - w`` and ``t``. The entry fills are an equi-join on the operation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, Row, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, IntegerType, LongType

from spark_jobs.common.datasets import MONEY
from spark_jobs.common.decimals import divide, multiply, round_half_up, typed

SCOPE = "_scope"

STOP_DISTANCE = DecimalType(10, 4)
VOLATILITY = DecimalType(10, 6)
VOLUME = DecimalType(20, 8)
RUNNING_VOLUME = DecimalType(38, 8)  # a running sum over a year of candles
WINDOW_VOLUME = DecimalType(30, 8)
# Entry price arithmetic, exact: price·qty keeps all 16 places. A notional beyond 10^14
# (or a quantity beyond 10^16) does not fit: the feature is then null, never rounded.
NOTIONAL = DecimalType(30, 16)
QUANTITY = DecimalType(24, 8)

VOLATILITY_WINDOW_MIN = 15
VOLUME_WINDOW_H = 24
FAILURES_WINDOW_H = 1
#: The longest look-back of any feature except the entry fills (which go back to the
#: operation's first order): inputs older than ``t`` minus this cannot change a feature.
LONGEST_WINDOW_H = VOLUME_WINDOW_H


@dataclass(frozen=True)
class Feature:
    """A feature as a data scientist reads it in ``features.json``."""

    name: str
    type: str  # Spark SQL type
    nullable: bool
    unit: str
    window: str
    null_policy: str
    definition: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FEATURES: tuple[Feature, ...] = (
    Feature(
        "stop_distance_pct",
        "decimal(10,4)",
        False,
        "percent",
        "the operation's entry fills filled before t",
        "never null: a sample needs an entry fill before t",
        "|entry price - stop price| / entry price * 100, entry price = the quantity-weighted"
        " average price of the operation's entry fills (the side of its first fill) filled"
        " before t; rounded half-up to 4 places",
    ),
    Feature(
        "time_to_trigger_sec",
        "int",
        False,
        "seconds",
        "the operation's entry fills filled before t",
        "never null",
        "t - entry time, entry time = when the first of those entry orders was placed"
        " (created_at); whole seconds, rounded down",
    ),
    Feature(
        "volatility_15m",
        "decimal(10,6)",
        True,
        "log return (fraction), per minute",
        f"klines with close_time in [t - {VOLATILITY_WINDOW_MIN} min, t)",
        "null when the window holds fewer than 3 klines (fewer than 2 returns)",
        "sample standard deviation of ln(close_i / close_(i-1)) over consecutive klines of"
        " the symbol in the window, in close_time order; rounded half-up to 6 places",
    ),
    Feature(
        "volume_24h",
        "decimal(20,8)",
        True,
        "quote asset",
        f"klines with close_time in [t - {VOLUME_WINDOW_H} h, t)",
        "null when the window holds no kline",
        "sum of quote_asset_volume of the symbol's klines in the window",
    ),
    Feature(
        "hour_of_day",
        "int",
        False,
        "hour (0-23, UTC)",
        "t itself",
        "never null",
        "hour of t in UTC",
    ),
    Feature(
        "day_of_week",
        "int",
        False,
        "day (0 = Monday .. 6 = Sunday, UTC)",
        "t itself",
        "never null",
        "weekday of t in UTC, 0 = Monday",
    ),
    Feature(
        "consecutive_failures_1h",
        "int",
        False,
        "executions",
        f"the client's executions resolved in [t - {FAILURES_WINDOW_H} h, t)",
        "never null (0 when there is none)",
        "how many of the client's most recently resolved executions ended FAILED, counted"
        " back from t until one that did not (EXECUTED or BLOCKED) or the window's start."
        " An execution counts once its final status is reached (its last state-changing"
        " event); one that resolves at or after t does not count",
    ),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
REQUIRED = tuple(f.name for f in FEATURES if not f.nullable)


# --- inputs ------------------------------------------------------------------------------


def fills_input(fills: DataFrame) -> DataFrame:
    """Return the fills input from silver.operations' ``fills()`` of bronze.orders."""
    return fills.select(
        F.lit(0).alias(SCOPE),
        "operation_id",
        "id",
        "side",
        "price",
        "quantity",
        "created_at",
        "filled_at",
    )


def klines_input(klines: DataFrame) -> DataFrame:
    """Return the klines input from bronze.klines (one-minute candles only)."""
    return klines.filter(F.col("interval") == "1m").select(
        F.lit(0).alias(SCOPE), "symbol", "close_time", "close", "quote_asset_volume"
    )


def resolutions_input(executions: DataFrame) -> DataFrame:
    """Return the resolutions input from silver.stop_executions (final statuses only)."""
    final = F.col("status").isin("EXECUTED", "FAILED", "BLOCKED")
    return executions.filter(final & F.col("resolved_at").isNotNull()).select(
        F.lit(0).alias(SCOPE),
        "client_id",
        "resolved_at",
        (F.col("status") == "FAILED").alias("failed"),
    )


def persisted_inputs(
    fills: DataFrame, klines: DataFrame, executions: DataFrame
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Return the (fills, klines, resolutions) inputs, persisted: the features and the
    recheck's cut-at-t path each read them again. ``fills`` is silver.operations'
    ``fills()`` of bronze.orders, ``klines`` bronze.klines, ``executions``
    silver.stop_executions; the caller unpersists them (or ends the session)."""
    return (
        fills_input(fills).persist(),
        klines_input(klines).persist(),
        resolutions_input(executions).persist(),
    )


# --- the features ------------------------------------------------------------------------


def _ago(t: Column, *, minutes: int = 0, hours: int = 0) -> Column:
    return t - F.make_dt_interval(F.lit(0), F.lit(hours), F.lit(minutes))


def entry_features(samples: DataFrame, fills: DataFrame) -> DataFrame:
    """Return (scope, sample_key, stop_distance_pct, time_to_trigger_sec) from the fills
    filled before each sample's ``t`` (equi-join on the operation: a few fills each)."""
    keyed = samples.select(SCOPE, "sample_key", "operation_id", "stop_price", "t")
    known = keyed.join(fills, [SCOPE, "operation_id"]).filter(F.col("filled_at") < F.col("t"))
    fill = F.struct("filled_at", "id", "side", "price", "quantity", "created_at")
    # Grouped within the join's partitioning (scope, operation): no second shuffle.
    grouped = known.groupBy(SCOPE, "operation_id", "sample_key").agg(
        F.array_sort(F.collect_list(fill)).alias("_fills"),
        F.first("stop_price").alias("stop_price"),
        F.first("t").alias("t"),
    )
    entry_side = F.col("_fills")[0]["side"]
    entries = F.filter("_fills", lambda f: f["side"] == entry_side)
    # With N = Σ price·qty and Q = Σ qty of the entries, entry price = N / Q and
    # |N/Q - S| / (N/Q) · 100 = |N - S·Q| / N · 100: exact, then rounded once.
    notional = F.aggregate(
        entries,
        F.lit(0).cast(NOTIONAL),
        lambda acc, f: typed(acc + multiply(f["price"], f["quantity"], MONEY, MONEY, 30),
                             NOTIONAL),
    )  # fmt: skip
    quantity = F.aggregate(
        entries, F.lit(0).cast(QUANTITY), lambda acc, f: typed(acc + f["quantity"], QUANTITY)
    )
    at_stop = multiply(quantity, F.col("stop_price"), QUANTITY, MONEY, 30)
    gap = F.abs(notional - at_stop)  # decimal(31, 16)
    ratio = divide(gap, notional, DecimalType(31, 16), NOTIONAL, STOP_DISTANCE.scale + 2)
    distance = round_half_up(ratio, DecimalType(12, 6)) * F.lit(100)
    entry_time = F.array_min(F.transform(entries, lambda f: f["created_at"]))
    seconds = F.floor((F.unix_micros("t") - F.unix_micros(entry_time)) / F.lit(1_000_000))
    return grouped.select(
        SCOPE,
        "sample_key",
        typed(distance, STOP_DISTANCE).alias("stop_distance_pct"),
        seconds.cast(IntegerType()).alias("time_to_trigger_sec"),
    )


def log_returns(closes: Column) -> Column:
    """Return the one-step log returns ln(close_i / close_(i-1)) of ``closes`` (an array in
    time order), as an array of doubles one shorter (empty for fewer than 2 closes)."""
    n = F.greatest(F.size(closes) - 1, F.lit(0))
    return F.zip_with(
        F.slice(closes, 2, n),
        F.slice(closes, 1, n),
        lambda now, before: F.ln(now.cast("double") / before.cast("double")),
    )


def sample_sd(returns: Column) -> Column:
    """Return the sample standard deviation of ``returns`` (an array of doubles; two
    passes: the mean, then the squared deviations), rounded to 6 places; null for fewer
    than 2 values. Give it a column, not an expression: it reads ``returns`` three times."""
    n = F.size(returns)
    mean = F.aggregate(returns, F.lit(0.0), lambda acc, r: acc + r) / n
    # The mean rides in the accumulator: referenced from the lambda, Spark would evaluate
    # it (and the returns under it) again for every element.
    squares = F.aggregate(
        returns,
        F.struct(mean.alias("mean"), F.lit(0.0).alias("sum")),
        lambda acc, r: F.struct(
            acc["mean"].alias("mean"),
            (acc["sum"] + (r - acc["mean"]) * (r - acc["mean"])).alias("sum"),
        ),
        lambda acc: acc["sum"],
    )
    return F.when(n >= 2, F.round(F.sqrt(squares / (n - 1)), 6).cast(VOLATILITY))


def volatility(closes: Column) -> Column:
    """Return the sample standard deviation of the log returns of ``closes`` (an array in
    time order), rounded to 6 places; null for fewer than 2 returns."""
    return sample_sd(log_returns(closes))


def _edges(samples: DataFrame, key: str, hours: int) -> DataFrame:
    """Return two query points per sample: ``start`` at ``t - hours`` and ``end`` at ``t``
    (scope, key, sample_key, edge, _at)."""
    t = F.col("t")
    edges = F.array(
        F.struct(F.lit("start").alias("edge"), _ago(t, hours=hours).alias("_at")),
        F.struct(F.lit("end").alias("edge"), t.alias("_at")),
    )
    return samples.select(SCOPE, key, "sample_key", F.inline(edges))


def _timeline(rows: DataFrame, points: DataFrame) -> DataFrame:
    """Return ``rows`` and query ``points`` (both with ``_at``) as one frame ordered by
    ``_key``: 2·epoch micros, plus 1 for a row. A query sorts before a row at the same
    instant, so a frame ending one key before a query holds only rows strictly before it.
    Query points have a ``sample_key``, rows a null one."""
    key = F.unix_micros("_at") * F.lit(2)
    rows = rows.select("*", (key + F.lit(1)).alias("_key"))
    points = points.select("*", key.alias("_key"))
    return rows.unionByName(points, allowMissingColumns=True)


def _at_edge(edge: str, column: str) -> Column:
    return F.max(F.when(F.col("edge") == edge, F.col(column)))  # one row per edge


def market_features(samples: DataFrame, klines: DataFrame) -> DataFrame:
    """Return (scope, sample_key, volatility_15m, volume_24h).

    One timeline per (scope, symbol), sorted once (:func:`_timeline`): the symbol's klines
    at their close time and two query points per sample, at ``t - 24 h`` and at ``t``.
    At ``t``, a range frame collects the closes of ``[t - 15 min, t)``; at both points a
    running sum gives the volume, and the 24-hour volume is their difference. No join:
    a sample never meets a kline outside its windows.
    """
    rows = klines.select(
        SCOPE,
        "symbol",
        F.col("close_time").alias("_at"),
        F.struct("close_time", "close").alias("_candle"),
        F.col("quote_asset_volume").cast(RUNNING_VOLUME).alias("_volume"),
    )
    points = _edges(samples, "symbol", VOLUME_WINDOW_H)
    timeline = Window.partitionBy(SCOPE, "symbol").orderBy("_key")
    so_far = timeline.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    recent = timeline.rangeBetween(-2 * VOLATILITY_WINDOW_MIN * 60_000_000, -1)
    at_end = F.col("edge") == "end"
    queried = (
        _timeline(rows, points)
        .select(
            SCOPE,
            "symbol",
            "sample_key",
            "edge",
            # Narrow the running sums first, or their difference would lose a place.
            F.coalesce(F.sum("_volume").over(so_far), F.lit(0))
            .cast(WINDOW_VOLUME)
            .alias("_volume"),
            F.count("_volume").over(so_far).alias("_candles"),
            F.when(at_end, F.collect_list("_candle").over(recent)).alias("_recent"),
        )
        .filter(F.col("sample_key").isNotNull())
    )
    # Grouped within the window's partitioning: no second shuffle.
    per_sample = queried.groupBy(SCOPE, "symbol", "sample_key").agg(
        (_at_edge("end", "_volume") - _at_edge("start", "_volume")).alias("_volume"),
        (_at_edge("end", "_candles") - _at_edge("start", "_candles")).alias("_candles"),
        F.first("_recent", ignorenulls=True).alias("_recent"),
    )
    closes = F.transform(F.array_sort("_recent"), lambda c: c["close"])
    # Two projections: the returns are computed once per sample, then read by sample_sd.
    returns = per_sample.select(
        SCOPE,
        "sample_key",
        F.when(F.col("_candles") > 0, F.col("_volume").cast(VOLUME)).alias("volume_24h"),
        log_returns(F.coalesce(closes, F.array())).alias("_returns"),
    )
    return returns.select(
        SCOPE,
        "sample_key",
        sample_sd(F.col("_returns")).alias("volatility_15m"),
        "volume_24h",
    )


def failure_features(samples: DataFrame, resolutions: DataFrame) -> DataFrame:
    """Return (scope, sample_key, consecutive_failures_1h).

    With C(x) the number of the client's resolutions before x and L(x) the value of C
    just after its last non-failed resolution before x, the failures that run back from
    t are C(t) - L(t); those inside the window, C(t) - max(L(t), C(t - 1 h)).
    """
    position = (
        Window.partitionBy(SCOPE, "client_id")
        .orderBy("_at", F.col("failed").desc())
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    # Ties at one instant: a failure sorts before a success, so a failure never counts
    # across a success recorded at the same time.
    rows = resolutions.select(
        SCOPE, "client_id", F.col("resolved_at").alias("_at"), "failed"
    ).select(
        SCOPE, "client_id", "_at",
        F.when(~F.col("failed"), F.count(F.lit(1)).over(position)).alias("_mark"),
        F.lit(1).cast(LongType()).alias("_row"),
    )  # fmt: skip
    points = _edges(samples, "client_id", FAILURES_WINDOW_H)
    so_far = (
        Window.partitionBy(SCOPE, "client_id")
        .orderBy("_key")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    # C(x): a running count; L(x): a running max of the marks (they only grow).
    queried = (
        _timeline(rows, points)
        .select(
            SCOPE,
            "client_id",
            "sample_key",
            "edge",
            F.count("_row").over(so_far).alias("_c"),
            F.coalesce(F.max("_mark").over(so_far), F.lit(0)).alias("_l"),
        )
        .filter(F.col("sample_key").isNotNull())
    )
    per_sample = queried.groupBy(SCOPE, "client_id", "sample_key").agg(
        _at_edge("end", "_c").alias("c_end"),
        _at_edge("end", "_l").alias("l_end"),
        _at_edge("start", "_c").alias("c_start"),
    )
    count = F.col("c_end") - F.greatest("l_end", "c_start")
    return per_sample.select(
        SCOPE, "sample_key", count.cast(IntegerType()).alias("consecutive_failures_1h")
    )


def calendar_features(t: Column) -> dict[str, Column]:
    """Return hour_of_day and day_of_week (0 = Monday) of ``t`` (UTC)."""
    return {
        "hour_of_day": F.hour(t).cast(IntegerType()),
        "day_of_week": ((F.dayofweek(t) + 5) % 7).cast(IntegerType()),
    }


def compute_features(
    samples: DataFrame, fills: DataFrame, klines: DataFrame, resolutions: DataFrame
) -> DataFrame:
    """Return ``samples`` with one column per feature of :data:`FEATURES`.

    A sample whose operation has no entry fill before ``t`` gets null entry features.
    """
    entry = entry_features(samples, fills)
    market = market_features(samples, klines)
    failures = failure_features(samples, resolutions)
    keys = [SCOPE, "sample_key"]
    joined = (
        samples.join(entry, keys, "left").join(market, keys, "left").join(failures, keys, "left")
    )
    calendar = calendar_features(F.col("t"))
    return joined.select(
        *samples.columns,
        "stop_distance_pct",
        "time_to_trigger_sec",
        "volatility_15m",
        "volume_24h",
        calendar["hour_of_day"].alias("hour_of_day"),
        calendar["day_of_week"].alias("day_of_week"),
        F.coalesce("consecutive_failures_1h", F.lit(0))
        .cast(IntegerType())
        .alias("consecutive_failures_1h"),
    )


def features_struct() -> Column:
    """Return the ``features`` struct of a sample, fields in :data:`FEATURES` order."""
    return F.struct(*[F.col(f.name).cast(f.type).alias(f.name) for f in FEATURES])


# --- the second path: inputs cut at each sample's t --------------------------------------


def cut_at(
    samples: DataFrame, fills: DataFrame, klines: DataFrame, resolutions: DataFrame
) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame]:
    """Return (samples, fills, klines, resolutions) where each sample is its own scope and
    sees only the input rows known strictly before its ``t``.

    For a small number of samples (a check): each input row is copied once per sample
    it is known to. Klines and resolutions are also cut older than the longest window
    (they cannot matter); fills keep the operation's whole history before ``t``.
    """
    scoped = samples.drop(SCOPE).withColumn(SCOPE, F.col("sample_key"))
    cuts = F.broadcast(scoped.select(SCOPE, "operation_id", "symbol", "client_id", "t"))
    t = F.col("t")
    fills_cut = (
        fills.drop(SCOPE)
        .join(cuts.select(SCOPE, "operation_id", "t"), "operation_id")
        .filter(F.col("filled_at") < t)
        .drop("t")
    )
    klines_cut = (
        klines.drop(SCOPE)
        .join(cuts.select(SCOPE, "symbol", "t"), "symbol")
        .filter(
            (F.col("close_time") < t) & (F.col("close_time") >= _ago(t, hours=LONGEST_WINDOW_H))
        )
        .drop("t")
    )
    resolutions_cut = (
        resolutions.drop(SCOPE)
        .join(cuts.select(SCOPE, "client_id", "t"), "client_id")
        .filter(
            (F.col("resolved_at") < t)
            & (F.col("resolved_at") >= _ago(t, hours=FAILURES_WINDOW_H + 1))
        )
        .drop("t")
    )
    return scoped, fills_cut, klines_cut, resolutions_cut


#: What a sample needs for its features to be computed again on the second path.
SAMPLE_COLUMNS = (SCOPE, "sample_key", "client_id", "symbol", "operation_id", "stop_price", "t")


def recheck(
    picked: DataFrame, inputs: tuple[DataFrame, DataFrame, DataFrame]
) -> tuple[int, int, list[str]]:
    """Compute the features of ``picked`` (rows with :data:`SAMPLE_COLUMNS` and every
    feature) again from ``inputs`` (fills, klines, resolutions) cut at each row's ``t``;
    return (rows checked, rows that differ, up to 3 differing sample keys).

    The training sets' leakage recheck and the online parity check are this one
    comparison: served or published values against the cut-at-t path.
    """
    again = compute_features(*cut_at(picked.select(*SAMPLE_COLUMNS), *inputs))
    a, b = picked.alias("a"), again.alias("b")
    compared = a.join(b, F.col("a.sample_key") == F.col("b.sample_key"), "left")
    names = [f.name for f in FEATURES]
    differs = reduce(
        lambda acc, c: acc | c, [~F.col(f"a.{n}").eqNullSafe(F.col(f"b.{n}")) for n in names]
    )
    row: Row = compared.agg(
        F.count(F.lit(1)).alias("checked"),
        F.count_if(differs).alias("differ"),
        F.slice(F.collect_list(F.when(differs, F.col("a.sample_key"))), 1, 3).alias("examples"),
    ).first()
    return row["checked"], row["differ"], list(row["examples"])
