"""silver.portfolio_snapshots: returns, running peak and drawdown per client."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.testing import assertDataFrameEqual

from spark_jobs.common.checks import run_checks
from spark_jobs.silver.portfolio_snapshots import (
    affected_by_dates,
    build_portfolio_snapshots,
    expected_snapshots,
    quality_checks,
    seed_rows,
)
from tests.spark_jobs.builders import day, portfolio_frame, snapshot

pytestmark = pytest.mark.spark

BUILT = datetime(2025, 1, 2, tzinfo=UTC)


def _expected(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(
        rows,
        "snapshot_id long, base_value string, period_return string, "
        "cumulative_return string, running_peak string, drawdown string",
    ).selectExpr(
        "snapshot_id",
        "cast(base_value as decimal(20,8)) as base_value",
        "cast(period_return as decimal(20,10)) as period_return",
        "cast(cumulative_return as decimal(20,10)) as cumulative_return",
        "cast(running_peak as decimal(20,8)) as running_peak",
        "cast(drawdown as decimal(20,10)) as drawdown",
    )


def test_returns_peak_and_drawdown_per_client(spark: SparkSession) -> None:
    rows = [
        snapshot(1, "2024-12-27 00:00:00", "1000", id=1),
        snapshot(1, "2024-12-27 01:00:00", "1100", id=2),
        snapshot(1, "2024-12-27 02:00:00", "990", id=3),
        snapshot(1, "2024-12-28 00:00:00", "1210", id=4),
        # another client, listed out of order: ordering is by timestamp per client
        snapshot(2, "2024-12-27 01:00:00", "400", id=6),
        snapshot(2, "2024-12-27 00:00:00", "500", id=5),
    ]
    actual = build_portfolio_snapshots(portfolio_frame(spark, rows), BUILT)
    expected = _expected(
        spark,
        [
            (1, "1000", None, "0", "1000", "0"),
            (2, "1000", "0.1", "0.1", "1100", "0"),
            (3, "1000", "-0.1", "-0.01", "1100", "0.1"),
            (4, "1000", "0.2222222222", "0.21", "1210", "0"),
            (5, "500", None, "0", "500", "0"),
            (6, "500", "-0.2", "-0.2", "500", "0.2"),
        ],
    )
    assertDataFrameEqual(actual.select(*expected.columns), expected)
    dates = {r.snapshot_id: (r.client_id, r.date) for r in actual.collect()}
    assert dates[4] == (1, day("2024-12-28"))
    assert dates[6] == (2, day("2024-12-27"))


def test_history_older_than_bronze_comes_from_the_seed(spark: SparkSession) -> None:
    # Silver still holds client 1's first snapshots; bronze has only kept the last ones.
    silver = spark.createDataFrame(
        [
            (1, 1, datetime(2024, 9, 1, tzinfo=UTC), "800", "800", "800"),
            (1, 2, datetime(2024, 9, 2, tzinfo=UTC), "1250", "800", "1250"),
            (1, 3, datetime(2024, 12, 27, tzinfo=UTC), "1000", "800", "1250"),
        ],
        "client_id long, snapshot_id long, timestamp timestamp, total_value string, "
        "base_value string, running_peak string",
    ).selectExpr(
        "client_id",
        "snapshot_id",
        "timestamp",
        *[
            f"cast({c} as decimal(20,8)) as {c}"
            for c in ("total_value", "base_value", "running_peak")
        ],
    )
    bronze = portfolio_frame(
        spark,
        [
            snapshot(1, "2024-12-27 00:00:00", "1000", id=3),
            snapshot(1, "2024-12-28 00:00:00", "1100", id=4),
        ],
    )
    seeds = seed_rows(silver, bronze)
    actual = build_portfolio_snapshots(bronze, BUILT, seeds)
    expected = _expected(
        spark,
        [
            (3, "800", "-0.2", "0.25", "1250", "0.2"),
            (4, "800", "0.1", "0.375", "1250", "0.12"),
        ],
    )
    assertDataFrameEqual(actual.select(*expected.columns), expected)


def test_dates_scope_rewrites_each_touched_client_from_its_first_touched_date(
    spark: SparkSession,
) -> None:
    bronze = portfolio_frame(
        spark,
        [
            snapshot(1, "2024-12-26 00:00:00", "1", id=1),
            snapshot(1, "2024-12-27 00:00:00", "1", id=2),  # new
            snapshot(1, "2024-12-28 00:00:00", "1", id=3),  # later: depends on it
            snapshot(2, "2024-12-28 00:00:00", "1", id=4),  # untouched client
        ],
    )
    snapshots = build_portfolio_snapshots(bronze, BUILT)
    chosen = affected_by_dates(snapshots, bronze, [day("2024-12-27")])
    assert sorted(r.snapshot_id for r in chosen.collect()) == [2, 3]
    assert expected_snapshots(bronze, chosen) == 2


def half_even(value: Fraction, places: int = 10) -> Decimal:
    """Round an exact rational half-even at ``places`` decimal places."""
    scaled = value * 10**places
    whole = math.floor(scaled)
    rest = scaled - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2 == 1):
        whole += 1
    return Decimal(whole).scaleb(-places)


def test_returns_equal_the_exact_quotient_rounded_once(spark: SparkSession) -> None:
    rng = random.Random(7)
    rows, expected = [], {}
    for client in (1, 2, 3):
        values = [Decimal(rng.randrange(1, 10**19)).scaleb(-8) for _ in range(12)]
        values[3] = values[2] * 3  # a return of exactly 2
        values[5] = values[4] + Decimal("0.00000001")  # a tiny one
        first, peak, previous = values[0], Decimal(0), None
        for i, value in enumerate(values):
            snapshot_id = client * 100 + i
            rows.append(snapshot(client, f"2024-12-27 {i:02}:00:00", str(value), id=snapshot_id))
            peak = max(peak, value)
            v = Fraction(value)
            expected[snapshot_id] = (
                None if previous is None else half_even(v / Fraction(previous) - 1),
                half_even(v / Fraction(first) - 1),
                half_even((Fraction(peak) - v) / Fraction(peak)),
            )
            previous = value
    # 0.00000005 / 200 = 2.5e-10: a tie at 10 places, to the even 2e-10 (half up: 3e-10)
    rows.append(snapshot(4, "2024-12-27 00:00:00", "200", id=401))
    rows.append(snapshot(4, "2024-12-27 01:00:00", "200.00000005", id=402))
    expected[401] = (None, Decimal(0), Decimal(0))
    expected[402] = (Decimal("2E-10"), Decimal("2E-10"), Decimal(0))
    actual = build_portfolio_snapshots(portfolio_frame(spark, rows), BUILT).collect()
    got = {r.snapshot_id: (r.period_return, r.cumulative_return, r.drawdown) for r in actual}
    assert got == expected


def test_a_return_too_large_to_type_is_nulled_and_counted(spark: SparkSession) -> None:
    rows = [
        snapshot(1, "2024-12-27 00:00:00", "0.00000001", id=1),
        snapshot(1, "2024-12-27 01:00:00", "500", id=2),  # +5e10: beyond decimal(20,10)
        snapshot(1, "2024-12-27 02:00:00", "0", id=3),
        snapshot(1, "2024-12-27 03:00:00", "400", id=4),  # previous 0: no return
        snapshot(2, "2024-12-27 00:00:00", "100", id=5),
        snapshot(2, "2024-12-27 01:00:00", "110", id=6),
    ]
    untypeable = Observation()
    built = build_portfolio_snapshots(portfolio_frame(spark, rows), BUILT, None, untypeable)
    staged = built.localCheckpoint()  # computes the frame once, like the staging write
    got = {r.snapshot_id: (r.period_return, r.cumulative_return) for r in staged.collect()}
    assert got[2] == (None, None)
    assert got[4] == (None, None)
    assert got[6] == (Decimal("0.1"), Decimal("0.1"))
    results = {
        r.check: r
        for r in run_checks(staged, "silver.portfolio_snapshots", quality_checks(6, untypeable), ())
    }
    check = results["untypeable_values"]
    assert (check.passed, check.critical) == (False, False)
    assert check.observed.startswith("3 untypeable values: period_return 1 (e.g. snapshot 2: ")
    assert "cumulative_return 2" in check.observed
    assert all(r.passed for name, r in results.items() if r.critical)


def test_two_valuations_at_one_instant_are_flagged_not_fatal(spark: SparkSession) -> None:
    rows = [
        snapshot(1, "2024-12-27 00:00:00", "1000", id=1),
        snapshot(1, "2024-12-27 00:00:00", "25", id=2),  # the same client and instant
        snapshot(2, "2024-12-27 00:00:00", "100", id=3),
    ]
    staged = build_portfolio_snapshots(portfolio_frame(spark, rows), BUILT).localCheckpoint()
    results = {
        r.check: r for r in run_checks(staged, "silver.portfolio_snapshots", quality_checks(3), ())
    }
    check = results["one_snapshot_per_client_and_time"]
    assert (check.passed, check.critical) == (False, False)
    assert all(r.passed for r in results.values() if r.critical)
