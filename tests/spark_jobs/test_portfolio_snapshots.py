"""silver.portfolio_snapshots: returns, running peak and drawdown per client."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from spark_jobs.silver.portfolio_snapshots import (
    affected_by_dates,
    build_portfolio_snapshots,
    expected_snapshots,
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
