"""silver.operations: position summary, exact PnL, fees, strategy attribution, scope."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from pyspark.sql import DataFrame, Observation, SparkSession
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


# --- money is exact: Spark against an independent Python oracle ---------------------------


def half_even(value: Fraction, places: int = 8) -> Decimal:
    """Round an exact rational half-even at ``places`` decimal places."""
    scaled = value * 10**places
    whole = math.floor(scaled)
    rest = scaled - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2 == 1):
        whole += 1
    return Decimal(whole).scaleb(-places)


def oracle(orders: list[dict]) -> dict[int, tuple]:
    """Return, per operation, what silver.operations should hold, from rational arithmetic."""
    bnb = sorted((o["created_at"], o["price"]) for o in orders if o["symbol"] == "BNBUSDC")
    found: dict[int, tuple] = {}
    for op in sorted({o["related_operation_id"] for o in orders}):
        legs = sorted(
            (o for o in orders if o["related_operation_id"] == op),
            key=lambda o: (o["created_at"], o["id"]),
        )
        side = legs[0]["side"]
        entry = [o for o in legs if o["side"] == side]
        exit_ = [o for o in legs if o["side"] != side]
        fees, unconverted = Fraction(0), set()
        for o in legs:
            fee = Fraction(o["fee"])
            if o["fee_asset"] == "USDC":
                fees += fee
            elif o["fee_asset"] == o["asset"]:
                fees += fee * Fraction(o["price"])
            else:  # BNB: the last BNBUSDC price at or before the fill
                earlier = [p for at, p in bnb if at <= o["created_at"]]
                if earlier:
                    fees += fee * Fraction(earlier[-1])
                else:
                    unconverted.add(o["fee_asset"])
        q_in = sum(Fraction(o["quantity"]) for o in entry)
        avg_in = sum(Fraction(o["price"]) * Fraction(o["quantity"]) for o in entry) / q_in
        q_out = avg_out = pnl = None
        if exit_:
            q_out = sum(Fraction(o["quantity"]) for o in exit_)
            avg_out = sum(Fraction(o["price"]) * Fraction(o["quantity"]) for o in exit_) / q_out
            sign = 1 if side == "BUY" else -1
            pnl = half_even(sign * (avg_out - avg_in) * q_out - fees)
        found[op] = (
            side,
            "CLOSED" if q_out is not None and q_out >= q_in else "OPEN",
            half_even(q_in),
            half_even(avg_in),
            None if q_out is None else half_even(q_out),
            None if avg_out is None else half_even(avg_out),
            half_even(fees),
            pnl,
            sorted(unconverted),
        )
    return found


def price(rng: random.Random, low: int, high: int) -> str:
    """Return a random price in [low, high) with 8 decimal places."""
    return str(Decimal(rng.randrange(low * 10**8, high * 10**8)).scaleb(-8))


def generated_orders(seed: int, count: int) -> list[dict]:
    """Return seeded orders of ``count`` operations: small to large notionals, partial,
    full and over-exits, average prices on a tie, fees in quote, base and BNB."""
    rng = random.Random(seed)
    start = datetime(2024, 12, 27, 1, tzinfo=UTC)

    def at(seconds: int) -> str:
        return (start + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")

    rows = [  # BNBUSDC price points, from one hour in
        order(900, "BUY", "1", price(rng, 500, 800), at(3600 + 600 * i), **BNB) for i in range(3)
    ]
    scales = [  # (price range, quantity range in units of 1e-8)
        ((0, 1), (10**8, 10**17)),  # meme coin: tiny prices, up to 1e9 units a fill
        ((20_000, 120_000), (10**4, 10**9)),  # BTC
        # price ~1e8, 1,000 to 3,000 units a fill: a leg stays under 1e12, the most that
        # a decimal(20,8) total_value holds
        ((10**8 - 10**4, 10**8), (10**11, 3 * 10**11)),
    ]
    for op in range(1, count + 1):
        (low, high), (q_low, q_high) = rng.choice(scales)
        side, other = rng.choice([("BUY", "SELL"), ("SELL", "BUY")])
        quantities = [rng.randrange(q_low, q_high) for _ in range(rng.randint(1, 3))]
        prices = [price(rng, low, high) for _ in quantities]
        if op % 5 == 0:  # two equal fills one unit apart: the average is a tie
            quantities = [quantities[0]] * 2
            prices = [prices[0], str(Decimal(prices[0]) + Decimal("0.00000001"))]
        total = sum(quantities)
        exits = rng.choice(
            [[], [total], [total // 3, total - total // 3], [rng.randrange(1, total)], [total + 7]]
        )
        t = rng.randrange(0, 7200)
        fills = [(side, q, p) for q, p in zip(quantities, prices, strict=True)]
        fills += [(other, q, price(rng, low, high)) for q in exits if q > 0]
        for i, (s, q, p) in enumerate(fills):
            units = Decimal(q).scaleb(-8)
            fee_asset = rng.choice(["USDC", "BTC", "BNB"])
            fee = Decimal(rng.randrange(0, 10**7)).scaleb(-8)
            if fee_asset == "USDC":
                fee = (Decimal(p) * units * Decimal("0.001")).quantize(Decimal("1e-8"))
            rows.append(
                order(op, s, str(units), p, at(t + 60 * i), fee=str(fee), fee_asset=fee_asset)
            )
    return rows


BNB = {"symbol": "BNBUSDC", "asset": "BNB", "fee": "0"}


def test_money_columns_equal_the_exact_result_rounded_once(spark: SparkSession) -> None:
    orders = generated_orders(seed=20241227, count=60)
    orders += [  # the example: a short of 0.00429 from 97665.16 to 97014.91
        order(1000, "SELL", "0.00429", "97665.16", "2024-12-27 01:00:00", fee="0.4175", id=10**6),
        order(1000, "BUY", "0.00429", "97014.91", "2024-12-27 02:00:00", fee="0.4176775"),
    ]
    rows = summarise(spark, orders).collect()
    got = {
        r.operation_id: (
            r.side,
            r.status,
            r.quantity,
            r.entry_price,
            r.exit_quantity,
            r.exit_price,
            r.fees,
            r.realized_pnl,
            r.unconverted_fee_assets,
        )
        for r in rows
    }
    expected = oracle(orders)
    assert expected[1000][7] == Decimal("1.95439500")
    assert {op: got[op] for op in expected} == expected
    assert set(got) == set(expected)


def test_a_fill_whose_amount_cannot_be_typed_is_left_out_and_counted(spark: SparkSession) -> None:
    absurd = order(2, "BUY", "1", "1", "2024-12-27 10:01:00", id=22)
    huge = Decimal("99999999999")  # price·qty ≈ 1e22: beyond decimal(37,16)
    absurd.update(quantity=huge, price=huge, total_value=None)
    orders = [
        order(1, "BUY", "1", "100", "2024-12-27 10:00:00", id=11),
        order(2, "BUY", "2", "50", "2024-12-27 10:00:00", id=21),
        absurd,
    ]
    untypeable = Observation()
    frame = orders_frame(spark, orders)
    executions = spark.createDataFrame([], EXECUTIONS)
    built = build_operations(frame, executions, BUILT, untypeable).localCheckpoint()
    rows = {r.operation_id: r for r in built.collect()}
    assert (rows[2].quantity, rows[2].entry_price, rows[2].fill_count) == (
        Decimal("2"),
        Decimal("50"),
        1,
    )
    assert rows[1].entry_price == Decimal("100")
    results = {
        r.check: r
        for r in run_checks(
            built,
            "silver.operations",
            quality_checks(expected_operations(frame, built), untypeable),
            ("strategy_id", "date"),
        )
    }
    assert results["untypeable_values"].observed == (
        "1 untypeable values: fill_amount 1 (e.g. order 22: "
        "99999999999.00000000 x 99999999999.00000000, fee 0.00000000 USDC)"
    )
    assert all(r.passed for r in results.values() if r.critical)
