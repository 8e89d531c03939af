"""The gold features: values on tiny inputs, rows planted at and after t, the cut path."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs.gold import features
from spark_jobs.gold.features import FEATURE_NAMES, compute_features, cut_at
from spark_jobs.silver.operations import fills
from tests.spark_jobs.builders import kline, klines_frame, order, orders_frame, ts

pytestmark = pytest.mark.spark

T = "2024-12-27 10:00:00"
SAMPLES = "_scope int, sample_key string, client_id bigint, symbol string, operation_id bigint, "
SAMPLES += "stop_price decimal(20,8), t timestamp"
RESOLUTIONS = "client_id bigint, status string, resolved_at timestamp"

# Closes of the 15 klines that close in [t - 15 min, t): 09:45:59.999 .. 09:59:59.999.
CLOSES = ["100", "101", "100.5", "102", "101", "103", "102.5", "104", "103", "103.5", "105",
          "104", "106", "105.5", "107"]  # fmt: skip


def window_klines() -> list[dict]:
    start = ts("2024-12-27 09:45:00")
    return [
        kline((start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S"), c, quote_volume="10")
        for i, c in enumerate(CLOSES)
    ]


def expected_volatility(closes: list[str]) -> Decimal:
    returns = [math.log(float(b) / float(a)) for a, b in itertools.pairwise(closes)]
    return Decimal(str(round(statistics.stdev(returns), 6))).quantize(Decimal("1e-6"))


def inputs(spark: SparkSession, *, planted: bool) -> tuple[DataFrame, ...]:
    """Return (samples, fills, klines, resolutions); ``planted`` adds rows at/after t."""
    t = ts(T)
    samples = spark.createDataFrame(
        [
            (0, "a", 1, "BTCUSDC", 100, Decimal("95100"), t),
            (0, "b", 2, "BTCUSDC", 200, Decimal("95100"), t),
            (0, "c", 3, "ETHUSDC", 300, Decimal("3000"), t),  # nothing known before t
        ],
        SAMPLES,
    )
    orders = [
        order(100, "BUY", "1", "100000", "2024-12-27 09:00:00"),
        order(100, "BUY", "1", "98000", "2024-12-27 09:10:00"),
        order(200, "SELL", "2", "90000", "2024-12-27 08:00:00", client_id=2),
        order(200, "BUY", "1", "91000", "2024-12-27 08:30:00", client_id=2),  # an exit
    ]
    candles = [
        kline("2024-12-27 09:44:00", "50"),  # closes 09:44:59.999: before the 15 min window
        *window_klines(),
        # [t - 24 h, t): one closing exactly at t - 24 h counts, one just before does not
        kline(
            "2024-12-26 09:59:00",
            "90",
            quote_volume="1000",
            close_time=datetime(2024, 12, 26, 10, 0, 0),
        ),
        kline(
            "2024-12-26 09:58:00",
            "90",
            quote_volume="5000",
            close_time=datetime(2024, 12, 26, 9, 59, 59, 999000),
        ),
    ]
    resolved = [
        (1, "EXECUTED", ts("2024-12-27 08:30:00")),
        (1, "FAILED", ts("2024-12-27 09:10:00")),
        (1, "EXECUTED", ts("2024-12-27 09:20:00")),
        (1, "FAILED", ts("2024-12-27 09:30:00")),
        (1, "FAILED", ts("2024-12-27 09:40:00")),
        (2, "FAILED", ts("2024-12-27 08:50:00")),  # before the 1 h window
        (2, "FAILED", ts("2024-12-27 09:00:00")),  # exactly at t - 1 h: counts
        (2, "BLOCKED", ts("2024-12-27 08:59:59")),
        (2, "FAILED", ts("2024-12-27 09:59:59")),
    ]
    if planted:
        orders += [
            order(100, "BUY", "5", "50000", T),  # filled exactly at t
            order(100, "BUY", "5", "10", "2024-12-27 10:00:01"),
            order(300, "BUY", "1", "3100", "2024-12-27 11:00:00", client_id=3),
        ]
        candles += [
            kline(
                "2024-12-27 09:59:00",
                "1",
                quote_volume="99999",
                close_time=datetime(2024, 12, 27, 10, 0, 0),
            ),  # closes at t
            kline("2024-12-27 10:00:00", "500", quote_volume="99999"),
            kline("2024-12-27 10:05:00", "3000", quote_volume="99999", symbol="ETHUSDC"),
        ]
        resolved += [
            (1, "FAILED", t),  # resolves exactly at t
            (1, "FAILED", ts("2024-12-27 10:30:00")),
            (2, "EXECUTED", t),  # would break client 2's run if it leaked
            (3, "FAILED", ts("2024-12-27 10:10:00")),
        ]
    return (
        samples,
        features.fills_input(fills(orders_frame(spark, orders))),
        features.klines_input(klines_frame(spark, candles)),
        features.resolutions_input(spark.createDataFrame(resolved, RESOLUTIONS)),
    )


def test_features_on_tiny_inputs_ignore_rows_at_and_after_t(spark: SparkSession) -> None:
    columns = ("sample_key", *FEATURE_NAMES)
    expected = spark.createDataFrame(
        [
            # entry: (100000 + 98000) / 2 = 99000; |99000 - 95100| / 99000 * 100
            ("a", Decimal("3.9394"), 3600, expected_volatility(CLOSES), Decimal("1160"), 10, 4, 2),
            # a SELL entry at 90000; the later BUY is its exit, not an entry
            ("b", Decimal("5.6667"), 7200, expected_volatility(CLOSES), Decimal("1160"), 10, 4, 2),
            ("c", None, None, None, None, 10, 4, 0),
        ],
        "sample_key string, stop_distance_pct decimal(10,4), time_to_trigger_sec int, "
        "volatility_15m decimal(10,6), volume_24h decimal(20,8), hour_of_day int, "
        "day_of_week int, consecutive_failures_1h int",
    )
    for planted in (False, True):
        actual = compute_features(*inputs(spark, planted=planted)).select(*columns)
        assertDataFrameEqual(actual, expected)


def exact_stop_distance(entries: list[tuple[str, str]], stop: str) -> Decimal:
    """|N/Q - S| / (N/Q) * 100 with Python's exact decimals, rounded once, half up."""
    n = sum(Decimal(q) * Decimal(p) for q, p in entries)
    q = sum(Decimal(q) for q, _ in entries)
    exact = abs(n - Decimal(stop) * q) * 100 / n
    return exact.quantize(Decimal("1e-4"), rounding="ROUND_HALF_UP")


def test_stop_distance_is_exact_and_rounded_once(spark: SparkSession) -> None:
    """Rounded once at 4 places, from the exact value: a quotient rounded at 11 places,
    then 7, then 4 gave 1.1182 for 1.11814997... (the first case)."""
    rng = random.Random(20261201)
    cases = [([("0.47523", "3767.6699")], "3725.5417")]
    for _ in range(300):
        fills_ = [(f"{rng.randint(1, 10**8)}e-8", f"{rng.randint(10**8, 10**13)}e-8")
                  for _ in range(rng.randint(1, 3))]  # fmt: skip
        cases.append((fills_, f"{rng.randint(10**8, 10**13)}e-8"))
    t = ts(T)
    samples, orders = [], []
    for i, (entries, stop) in enumerate(cases):
        samples.append((0, str(i), 1, "BTCUSDC", 1000 + i, Decimal(stop), t))
        for j, (qty, price) in enumerate(entries):
            orders.append(order(1000 + i, "BUY", str(Decimal(qty)), str(Decimal(price)),
                                f"2024-12-27 09:{j:02d}:00"))  # fmt: skip
    got = compute_features(
        spark.createDataFrame(samples, SAMPLES),
        features.fills_input(fills(orders_frame(spark, orders))),
        features.klines_input(klines_frame(spark, [])),
        features.resolutions_input(spark.createDataFrame([], RESOLUTIONS)),
    ).select("sample_key", "stop_distance_pct")
    actual = {r.sample_key: r.stop_distance_pct for r in got.collect()}
    expected = {str(i): exact_stop_distance(e, s) for i, (e, s) in enumerate(cases)}
    assert actual["0"] == Decimal("1.1181")
    assert {k: v for k, v in actual.items() if v != expected[k]} == {}


def test_the_cut_path_gives_the_same_features(spark: SparkSession) -> None:
    samples, fills_, klines, resolutions = inputs(spark, planted=True)
    fast = compute_features(samples, fills_, klines, resolutions)
    cut = compute_features(*cut_at(samples, fills_, klines, resolutions))
    columns = ("sample_key", *FEATURE_NAMES)
    assertDataFrameEqual(cut.select(*columns), fast.select(*columns))


def test_a_leaking_input_is_caught_by_the_cut_path(spark: SparkSession) -> None:
    """If the klines fed to the fast path were shifted into the future (a feature reading
    rows at or after t), the cut path would disagree."""
    samples, fills_, klines, resolutions = inputs(spark, planted=True)
    later = klines.withColumn("close_time", F.col("close_time") + F.expr("INTERVAL 1 MINUTE"))
    leaky = compute_features(samples, fills_, later, resolutions)
    cut = compute_features(*cut_at(samples, fills_, klines, resolutions))
    columns = ("sample_key", "volatility_15m", "volume_24h")
    with pytest.raises(AssertionError):
        assertDataFrameEqual(cut.select(*columns), leaky.select(*columns))


@pytest.mark.parametrize(
    ("closes", "expected"),
    [
        ([], None),
        (["100"], None),
        (["100", "101"], None),  # one return: no standard deviation
        (["100", "101", "100"], expected_volatility(["100", "101", "100"])),
        (CLOSES, expected_volatility(CLOSES)),
    ],
)
def test_volatility_of_closes(spark: SparkSession, closes: list[str], expected) -> None:
    frame = spark.createDataFrame([([Decimal(c) for c in closes],)], "closes array<decimal(20,8)>")
    assert frame.select(features.volatility(F.col("closes"))).first()[0] == expected


@pytest.mark.parametrize(
    ("at", "hour", "weekday"),
    [
        ("2024-12-23 00:00:00", 0, 0),  # Monday
        ("2024-12-28 23:59:59", 23, 5),  # Saturday
        ("2024-12-29 12:00:00", 12, 6),  # Sunday
    ],
)
def test_calendar_features(spark: SparkSession, at: str, hour: int, weekday: int) -> None:
    calendar = features.calendar_features(F.col("t"))
    row = (
        spark.createDataFrame([(ts(at),)], "t timestamp")
        .select(calendar["hour_of_day"], calendar["day_of_week"])
        .first()
    )
    assert tuple(row) == (hour, weekday)


def test_point_in_time_joins_are_equi_joins(spark: SparkSession) -> None:
    """No sample is compared with every kline, fill or resolution: the plan holds no
    nested-loop or cartesian join (they would make the build quadratic)."""
    plan = compute_features(*inputs(spark, planted=True))._jdf.queryExecution().executedPlan()
    text = plan.toString()
    assert "NestedLoopJoin" not in text
    assert "CartesianProduct" not in text
    assert "SortMergeJoin" in text or "BroadcastHashJoin" in text
