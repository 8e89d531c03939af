"""A value a silver job cannot type is nulled and counted; every other row is published."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import Observation, SparkSession
from pyspark.sql import functions as F

from spark_jobs.common.checks import UntypeableCheck, observe_untypeable, untypeable_observed
from tests.spark_jobs.builders import event, order, snapshot, write_bronze
from tests.spark_jobs.test_main import run, silver

pytestmark = pytest.mark.spark

T, X = "STOP_TRIGGERED", "EXECUTED"


def check(result: dict, name: str = "untypeable_values") -> dict:
    (found,) = [c for c in result["checks"] if c["check"] == name]
    return found


def test_stop_executions_null_a_strategy_id_that_is_not_a_number(
    spark: SparkSession, lake: Path, tmp_path: Path
) -> None:
    bad = event("bad", T, "2024-12-27 10:00:00", client_id=1, strategy_id=None)
    bad["payload_json"] = '{"strategy_id": "abc", "price": "not a number"}'
    write_bronze(
        lake,
        "events",
        [
            bad,
            event("bad", X, "2024-12-27 10:00:01", client_id=1, fill_price="1", slippage_pct="0"),
            event("good", T, "2024-12-27 11:00:00", client_id=2, strategy_id=7),
        ],
    )
    code, result = run(lake, tmp_path, "silver.stop_executions")
    assert code == 0, result["error"]
    assert result["published"] is True
    rows = {r.execution_token: r for r in silver(spark, lake, "silver.stop_executions").collect()}
    assert (rows["bad"].strategy_id, rows["bad"].status, rows["bad"].client_id) == (
        None,
        "EXECUTED",
        1,
    )
    assert rows["good"].strategy_id == 7
    found = check(result)
    assert (found["passed"], found["critical"]) == (False, False)
    assert found["observed"] == (
        f"1 untypeable values: strategy_id 1 (e.g. event {bad['event_id']}: abc)"
    )

    # An incremental run counts them too.
    code, result = run(lake, tmp_path, "silver.stop_executions", "--dates", "2024-12-27",
                       "--overwrite")  # fmt: skip
    assert code == 0, result["error"]
    assert check(result)["observed"].startswith("1 untypeable values")


def test_operations_publish_every_operation_despite_an_untypeable_strategy(
    spark: SparkSession, lake: Path, tmp_path: Path
) -> None:
    at = "2024-12-27 10:00:00"
    write_bronze(
        lake,
        "orders",
        [
            order(1, "BUY", "1", "100", at, client_id=1, raw_response='{"strategy_id": "abc"}'),
            order(1, "SELL", "1", "101", "2024-12-27 11:00:00", client_id=1),
            order(2, "BUY", "2", "50", at, client_id=2, raw_response='{"strategy_id": 4}'),
        ],
    )
    code, result = run(lake, tmp_path, "silver.operations")
    assert code == 0, result["error"]
    rows = {r.operation_id: r for r in silver(spark, lake, "silver.operations").collect()}
    assert (rows[1].strategy_id, rows[1].realized_pnl) == (0, Decimal("1"))
    assert rows[2].strategy_id == 4
    found = check(result)
    assert (found["passed"], found["critical"]) == (False, False)
    assert found["observed"] == "1 untypeable values: strategy_id 1 (e.g. abc)"
    assert check(result, "money_in_exact_range")["passed"] is True


def test_portfolio_snapshots_publish_every_client_despite_a_return_out_of_range(
    spark: SparkSession, lake: Path, tmp_path: Path
) -> None:
    write_bronze(
        lake,
        "portfolio",
        [
            snapshot(1, "2024-12-27 00:00:00", "0", id=1),
            snapshot(1, "2024-12-27 01:00:00", "0.00000001", id=2),  # previous 0: no return
            snapshot(1, "2024-12-27 02:00:00", "900", id=3),  # 9e10 - 1: out of range
            snapshot(2, "2024-12-27 00:00:00", "100", id=4),
            snapshot(2, "2024-12-27 01:00:00", "125", id=5),
        ],
    )
    code, result = run(lake, tmp_path, "silver.portfolio_snapshots")
    assert code == 0, result["error"]
    rows = {r.snapshot_id: r for r in silver(spark, lake, "silver.portfolio_snapshots").collect()}
    assert [rows[i].period_return for i in (1, 2, 3)] == [None, None, None]
    assert rows[5].period_return == Decimal("0.25")
    found = check(result)
    assert (found["passed"], found["critical"]) == (False, False)
    assert found["observed"].startswith("1 untypeable values: period_return 1 (e.g. snapshot 3:")


def test_the_check_reads_counts_without_waiting_on_a_frame_that_computed_nothing(
    spark: SparkSession,
) -> None:
    kinds = {"id": (F.col("id") > 3, F.col("id").cast("string"))}
    ran, pruned, idle = Observation(), Observation(), Observation()
    observe_untypeable(spark.range(10), ran, kinds).collect()
    # The optimizer drops the observed part of a frame it proves empty.
    observe_untypeable(spark.range(10), pruned, kinds).filter(F.col("id").isin([])).collect()
    observe_untypeable(spark.range(10), idle, kinds)
    assert untypeable_observed(UntypeableCheck(ran, ("id",))) == (
        6,
        "6 untypeable values: id 6 (e.g. 9)",
    )
    for observation in (pruned, idle):
        assert untypeable_observed(UntypeableCheck(observation, ("id",))) == (
            0,
            "0 untypeable values (no rows computed)",
        )
