"""silver.operations: position summary, exact PnL, fees, strategy attribution, scope."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs.common.checks import run_checks
from spark_jobs.silver.operations import (
    UNATTRIBUTED,
    affected_by_dates,
    build_operations,
    expected_operations,
    quality_checks,
)
from tests.spark_jobs.builders import day, event, events_frame, order, orders_frame, utc

pytestmark = pytest.mark.spark

BUILT = datetime(2025, 1, 2, tzinfo=UTC)
EXECUTIONS = "operation_id long, status string, strategy_id long"


def summarise(spark: SparkSession, orders: list[dict], executions: list[tuple] = ()) -> DataFrame:
    return build_operations(
        orders_frame(spark, orders), spark.createDataFrame(list(executions), EXECUTIONS), BUILT
    )


def test_position_prices_fees_and_pnl_are_exact(spark: SparkSession) -> None:
    d = "2024-12-27 1"
    orders = [
        # long, two entry fills, one exit: entry 100.2, exit 101
        order(1, "BUY", "0.3", "100.10", d + "0:00:00", fee="0.03003"),
        order(1, "BUY", "0.2", "100.35", d + "0:00:01", fee="0.02007"),
        order(1, "SELL", "0.5", "101.00", d + "1:00:00", fee="0.0505"),
        # short: sold at 50.5, bought back higher at 51.25
        order(2, "SELL", "2", "50.50", d + "0:00:00", fee="0.101"),
        order(2, "BUY", "2", "51.25", d + "2:00:00", fee="0.1025"),
        # partly exited: realized on what was sold, still open
        order(3, "BUY", "1", "10", d + "0:00:00", fee="0.01"),
        order(3, "SELL", "0.4", "12", d + "3:00:00", fee="0.0048"),
        # entered only; a rejected exit is not a fill
        order(4, "BUY", "3", "7.77777777", d + "0:00:00"),
        order(4, "SELL", "3", None, d + "4:00:00", status="FAILED"),
    ]
    expected_decimals = ("quantity", "entry_price", "exit_quantity", "exit_price", "fees")
    expected_decimals += ("realized_pnl",)
    expected = spark.createDataFrame(
        [
            (1, "BUY", "CLOSED", "0.5", "100.2", "0.5", "101", "0.1006", "0.2994"),
            (2, "SELL", "CLOSED", "2", "50.5", "2", "51.25", "0.2035", "-1.7035"),
            (3, "BUY", "OPEN", "1", "10", "0.4", "12", "0.0148", "0.7852"),
            (4, "BUY", "OPEN", "3", "7.77777777", None, None, "0", None),
        ],
        "operation_id long, side string, status string, quantity string, entry_price string, "
        "exit_quantity string, exit_price string, fees string, realized_pnl string",
    ).selectExpr(
        "operation_id",
        "side",
        "status",
        *[
            f"cast({c} as decimal(20,8)) as {c}"
            for c in (
                "quantity",
                "entry_price",
                "exit_quantity",
                "exit_price",
                "fees",
                "realized_pnl",
            )
        ],
    )
    actual = summarise(spark, orders).select(*expected.columns)
    assertDataFrameEqual(actual, expected)


def test_times_partition_and_counts(spark: SparkSession) -> None:
    orders = [
        order(1, "BUY", "1", "100", "2024-12-27 23:59:00", id=10),
        order(1, "BUY", "1", "100", "2024-12-27 23:59:00", id=10),  # a bronze duplicate
        order(1, "SELL", "1", "99", "2024-12-28 08:00:00", id=11),
    ]
    executions = [(1, "FAILED", None), (1, "EXECUTED", None)]
    (row,) = summarise(spark, orders, executions).collect()
    assert row.entry_time == utc("2024-12-27 23:59:00")
    assert row.exit_time == utc("2024-12-28 08:00:00")
    assert (row.date, row.strategy_id, row.client_id, row.symbol) == (
        day("2024-12-27"),
        UNATTRIBUTED,
        1,
        "BTCUSDC",
    )
    assert (row.fill_count, row.stop_fired, row.stop_execution_count) == (2, True, 2)
    assert row.quantity == Decimal("1")


def test_stop_fired_only_when_a_stop_execution_executed(spark: SparkSession) -> None:
    orders = [order(1, "BUY", "1", "100", "2024-12-27 10:00:00")]
    (row,) = summarise(spark, orders, [(1, "FAILED", None), (1, "BLOCKED", None)]).collect()
    assert (row.stop_fired, row.stop_execution_count) == (False, 2)
    (row,) = summarise(spark, orders).collect()
    assert (row.stop_fired, row.stop_execution_count) == (False, 0)


def test_fees_are_converted_to_the_quote_asset(spark: SparkSession) -> None:
    at = "2024-12-27 1"
    orders = [
        # base-asset fee: valued at the fill's own price
        order(1, "BUY", "1", "100", at + "0:00:00", fee="0.001", fee_asset="BTC"),
        # BNB price points: BNBUSDC fills of another operation, at 700 then 710
        order(2, "BUY", "1", "700", at + "0:00:00", symbol="BNBUSDC", asset="BNB", fee="0"),
        order(2, "SELL", "1", "710", at + "2:00:00", symbol="BNBUSDC", asset="BNB", fee="0"),
        # BNB fees valued at the last BNBUSDC fill at or before them
        order(3, "BUY", "1", "100", at + "1:00:00", fee="0.01", fee_asset="BNB"),
        order(3, "SELL", "1", "100", at + "3:00:00", fee="0.01", fee_asset="BNB"),
        # before any BNB price: a later price is not used, the fee stays unconverted
        order(4, "BUY", "1", "100", "2024-12-27 09:00:00", fee="0.01", fee_asset="BNB"),
        # an asset bronze has no price for stays out of fees, and is reported
        order(5, "BUY", "1", "100", at + "0:00:00", fee="2", fee_asset="XYZ"),
        order(5, "SELL", "1", "100", at + "1:00:00", fee="0.1"),
    ]
    rows = {r.operation_id: r for r in summarise(spark, orders).collect()}
    assert rows[1].fees == Decimal("0.1")
    assert rows[3].fees == Decimal("14.1")  # 0.01 x 700 + 0.01 x 710
    assert (rows[4].fees, rows[4].unconverted_fee_assets) == (Decimal("0"), ["BNB"])
    assert (rows[5].fees, rows[5].unconverted_fee_assets) == (Decimal("0.1"), ["XYZ"])
    assert rows[5].realized_pnl == Decimal("-0.1")
    assert all(rows[i].unconverted_fee_assets == [] for i in (1, 2, 3))


def test_strategy_comes_from_orders_then_raw_response_then_stop_events(
    spark: SparkSession,
) -> None:
    at = "2024-12-27 10:00:00"
    orders = [
        order(1, "BUY", "1", "1", at, strategy_id=11, raw_response='{"strategy_id": 99}'),
        order(2, "BUY", "1", "1", at, raw_response='{"strategy_id": 22}'),
        order(3, "BUY", "1", "1", at),
        order(4, "BUY", "1", "1", at),
    ]
    executions = [(1, "EXECUTED", 98), (2, "EXECUTED", 97), (3, "FAILED", 33)]
    got = {r.operation_id: r.strategy_id for r in summarise(spark, orders, executions).collect()}
    assert got == {1: 11, 2: 22, 3: 33, 4: UNATTRIBUTED}


def test_dates_scope_includes_the_partition_an_operation_moved_out_of(
    spark: SparkSession,
) -> None:
    orders = [
        order(1, "BUY", "1", "100", "2024-12-26 10:00:00"),
        order(1, "SELL", "1", "101", "2024-12-27 10:00:00"),  # new today
        order(2, "BUY", "1", "100", "2024-12-26 11:00:00"),  # same partition, untouched
        order(3, "BUY", "1", "100", "2024-12-25 11:00:00"),  # elsewhere
    ]
    frame = orders_frame(spark, orders)
    executions = spark.createDataFrame([(1, "EXECUTED", 5), (2, "FAILED", 5)], EXECUTIONS)
    operations = build_operations(frame, executions, BUILT).localCheckpoint()  # run() caches
    # Yesterday, before its stop events were known, operation 1 sat in strategy 0.
    previous = spark.createDataFrame(
        [(1, 0, day("2024-12-26")), (3, 0, day("2024-12-25"))],
        "operation_id long, strategy_id long, date date",
    )
    chosen, partitions = affected_by_dates(operations, frame, previous, [day("2024-12-27")])
    assert partitions == ["strategy_id=0/date=2024-12-26", "strategy_id=5/date=2024-12-26"]
    assert sorted(r.operation_id for r in chosen.collect()) == [1, 2]
    assert expected_operations(frame, chosen) == 2


def test_dates_scope_includes_operations_whose_stop_fired_on_the_dates(
    spark: SparkSession,
) -> None:
    orders = [
        order(1, "BUY", "1", "100", "2024-12-20 10:00:00"),  # no order since the 20th
        order(2, "BUY", "1", "100", "2024-12-21 10:00:00"),
    ]
    frame = orders_frame(spark, orders)
    executions = spark.createDataFrame([(1, "EXECUTED", 5)], EXECUTIONS)
    operations = build_operations(frame, executions, BUILT).localCheckpoint()
    previous = spark.createDataFrame([], "operation_id long, strategy_id long, date date")
    events = events_frame(spark, [event("stop", "EXECUTED", "2024-12-27 10:00:00", operation_id=1)])
    chosen, partitions = affected_by_dates(operations, frame, previous, [day("2024-12-27")], events)
    assert [r.operation_id for r in chosen.collect()] == [1]
    assert partitions == ["strategy_id=5/date=2024-12-20"]
    without, _ = affected_by_dates(operations, frame, previous, [day("2024-12-27")])
    assert without.count() == 0


def test_quality_gates_catch_bad_operations(spark: SparkSession) -> None:
    orders = [
        order(1, "BUY", "1", "100", "2024-12-27 10:00:00"),
        order(1, "SELL", "1", "101", "2024-12-27 11:00:00"),
        order(2, "BUY", "1", "100", "2024-12-27 10:00:00", fee="1", fee_asset="XYZ"),
    ]
    # Checks run on staged files: a checkpoint stands for them (a short plan to re-run).
    good = summarise(spark, orders).localCheckpoint()
    bad = (
        good.unionByName(good.filter("operation_id = 1"))
        .withColumn("realized_pnl", F.lit(None).cast("decimal(20,8)"))
        .localCheckpoint()
    )
    results = {
        r.check: (r.passed, r.observed, r.critical)
        for r in run_checks(bad, "silver.operations", quality_checks(2), ("strategy_id", "date"))
    }
    assert results["operation_id_unique"] == (
        False,
        "1 duplicated operation_id in strategy_id=0/date=2024-12-27",
        True,
    )
    assert results["closed_has_exit_and_pnl"] == (
        False,
        "2 CLOSED rows without exit_price or realized_pnl in strategy_id=0/date=2024-12-27",
        True,
    )
    assert results["row_count_matches_bronze"] == (
        False,
        "3 rows; 2 expected from bronze operation ids with fills",
        True,
    )
    assert results["fees_converted"] == (
        False,
        "1 operations with fees not converted to the quote asset in strategy_id=0/date=2024-12-27",
        False,
    )
    clean = run_checks(good, "silver.operations", quality_checks(2), ("strategy_id", "date"))
    assert [r.check for r in clean if not r.passed] == ["strategy_attributed", "fees_converted"]
    assert all(not r.critical for r in clean if not r.passed)
