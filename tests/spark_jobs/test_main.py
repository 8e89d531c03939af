"""main(): the command line the Django side runs, in-process against a local lake."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from spark_jobs.main import main
from spark_jobs.silver import operations, portfolio_snapshots, stop_executions
from spark_jobs.silver.stop_executions import build_stop_executions
from tests.spark_jobs.builders import event, events_frame, order, snapshot, write_bronze

pytestmark = pytest.mark.spark

T, S, X = "STOP_TRIGGERED", "EXECUTION_SUBMITTED", "EXECUTED"

EVENTS = [
    event("a", T, "2024-12-26 10:00:00", client_id=1),
    event("a", S, "2024-12-26 10:00:01", client_id=1),
    event("a", X, "2024-12-26 10:00:02", client_id=1, fill_price="95000", slippage_pct="0.1"),
    # spans midnight: belongs to 2024-12-27
    event("night", T, "2024-12-27 23:59:59", client_id=1),
    event("night", S, "2024-12-28 00:00:01", client_id=1),
    event("b", T, "2024-12-27 09:00:00", client_id=2),
    event("c", T, "2024-12-28 09:00:00", client_id=2),
]
# Exported later: the midnight execution's outcome, and a new execution on the 28th.
LATE = [
    event("night", X, "2024-12-28 00:00:02", client_id=1, fill_price="94000", slippage_pct="1.2"),
    event("d", T, "2024-12-28 12:00:00", client_id=1),
]


def run(lake: Path, tmp_path: Path, job: str, *args: str) -> tuple[int, dict]:
    result = tmp_path / f"result-{len(list(tmp_path.glob('result-*')))}.json"
    code = main(
        [job, "--lake-uri", str(lake), "--run-id", "7", "--result-file", str(result), *args]
    )
    return code, json.loads(result.read_text())


def files(lake: Path, dataset: str) -> dict[str, list[str]]:
    """Return the Parquet files of each partition of a dataset (what a reader sees)."""
    root = lake / dataset.replace(".", "/")
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.parquet")):
        relative = path.relative_to(root)
        if any(part.startswith(("_", ".")) for part in relative.parts):
            continue
        found.setdefault(str(relative.parent), []).append(path.name)
    return found


SCHEMAS = {
    "silver.stop_executions": stop_executions.SCHEMA,
    "silver.operations": operations.SCHEMA,
    "silver.portfolio_snapshots": portfolio_snapshots.SCHEMA,
}


def silver(spark: SparkSession, lake: Path, dataset: str) -> DataFrame:
    """Read a published dataset back as any Spark reader would, with its declared types."""
    return spark.read.schema(SCHEMAS[dataset]).parquet(str(lake / dataset.replace(".", "/")))


def test_build_refuse_rerun_and_increment(spark: SparkSession, lake: Path, tmp_path: Path) -> None:
    write_bronze(lake, "events", EVENTS)

    code, result = run(lake, tmp_path, "silver.stop_executions")
    assert code == 0, result["error"]
    assert result["status"] == "succeeded"
    assert result["app_id"] == spark.sparkContext.applicationId
    assert result["inputs"] == {"bronze.events": 7}
    assert result["outputs"] == {"silver.stop_executions": 4}
    partitions = [
        "client_id=1/date=2024-12-26",
        "client_id=1/date=2024-12-27",
        "client_id=2/date=2024-12-27",
        "client_id=2/date=2024-12-28",
    ]
    assert result["partitions"] == partitions
    assert result["partition_rows"] == dict.fromkeys(partitions, 1)
    assert result["files"] == 4
    assert result["published"] is True
    # The bytes reported are the sizes of the published files, per partition and in all.
    root = lake / "silver" / "stop_executions"
    sizes = {p: sum(f.stat().st_size for f in (root / p).glob("*.parquet")) for p in partitions}
    assert result["partition_bytes"] == sizes
    assert result["bytes"] == sum(sizes.values()) > 0
    assert result["partition_files"] == dict.fromkeys(partitions, 1)
    assert result["error"] is None
    assert {c["check"] for c in result["checks"]} >= {
        "execution_id_unique",
        "row_count_matches_bronze",
    }
    assert all(c["passed"] for c in result["checks"])
    assert set(result["seconds"]) >= {"total", "spark_startup"}
    first = files(lake, "silver.stop_executions")
    assert sorted(first) == partitions  # one file per partition
    assert all(len(names) == 1 for names in first.values())
    assert not (lake / "_staging" / "run-7").exists()
    # What was published is what the transform computes from bronze.
    published = silver(spark, lake, "silver.stop_executions").drop("created_at").localCheckpoint()
    computed = build_stop_executions(events_frame(spark, EVENTS), datetime.now(UTC))
    assertDataFrameEqual(published, computed.drop("created_at").select(*published.columns))

    # Without --overwrite, existing partitions are refused before anything is written.
    code, result = run(lake, tmp_path, "silver.stop_executions")
    assert code == 2
    assert result["status"] == "failed"
    assert "4 partition(s) of silver.stop_executions already exist" in result["error"]
    assert "client_id=1/date=2024-12-26" in result["error"]
    assert files(lake, "silver.stop_executions") == first

    # A rerun with --overwrite yields the same rows again (no duplicates).
    code, _ = run(lake, tmp_path, "silver.stop_executions", "--overwrite")
    assert code == 0
    again = silver(spark, lake, "silver.stop_executions").drop("created_at")
    assertDataFrameEqual(again, published)

    # A new file for the 28th: only the partitions its executions fall in are rewritten
    # ("c", on the 28th but without a new event, is left as published).
    write_bronze(lake, "events", LATE, name="part-00000002-0000")
    before = files(lake, "silver.stop_executions")
    new_file = "bronze/events/date=2024-12-28/part-00000002-0000.parquet"
    code, result = run(
        lake, tmp_path, "silver.stop_executions", "--dates", "2024-12-28",
        "--new-files", new_file, "--overwrite",
    )  # fmt: skip
    assert code == 0, result["error"]
    assert result["inputs"] == {"bronze.events": len(LATE)}
    changed = ["client_id=1/date=2024-12-27", "client_id=1/date=2024-12-28"]
    assert result["partitions"] == changed
    after = files(lake, "silver.stop_executions")
    assert sorted(after) == sorted([*partitions, "client_id=1/date=2024-12-28"])
    assert [p for p in after if after[p] != before.get(p)] == changed
    night = silver(spark, lake, "silver.stop_executions").filter("execution_token = 'night'")
    assert [(r.status, r.event_count, str(r.date)) for r in night.collect()] == [
        ("EXECUTED", 3, "2024-12-27")
    ]
    assert silver(spark, lake, "silver.stop_executions").count() == 5

    # A backfill into a suffixed output is a separate dataset, limited to its dates.
    code, result = run(
        lake,
        tmp_path,
        "silver.stop_executions",
        "--start-date",
        "2024-12-27",
        "--end-date",
        "2024-12-27",
        "--output",
        "silver.stop_executions_v2",
    )
    assert code == 0, result["error"]
    assert result["output"] == "silver.stop_executions_v2"
    assert sorted(files(lake, "silver.stop_executions_v2")) == [
        "client_id=1/date=2024-12-27",
        "client_id=2/date=2024-12-27",
    ]
    assert files(lake, "silver.stop_executions") == after


def test_an_execution_whose_trigger_arrives_late_moves_whole(
    spark: SparkSession, lake: Path, tmp_path: Path
) -> None:
    # First export: only the submission (after midnight), so it is published on the 28th.
    write_bronze(lake, "events", [event("late", S, "2024-12-28 00:00:03", seq=11)])
    code, result = run(lake, tmp_path, "silver.stop_executions", "--overwrite")
    assert code == 0, result["error"]
    assert sorted(files(lake, "silver.stop_executions")) == ["client_id=1/date=2024-12-28"]

    # The trigger commits late: it is dated the 27th, and the daily run gets that date.
    write_bronze(
        lake,
        "events",
        [event("late", T, "2024-12-27 23:59:58", seq=10)],
        name="part-00000002-0000",
    )
    code, result = run(
        lake, tmp_path, "silver.stop_executions", "--dates", "2024-12-27", "--overwrite"
    )
    assert code == 0, result["error"]
    assert result["partitions"] == ["client_id=1/date=2024-12-27", "client_id=1/date=2024-12-28"]
    assert result["removed_partitions"] == ["client_id=1/date=2024-12-28"]
    assert sorted(files(lake, "silver.stop_executions")) == ["client_id=1/date=2024-12-27"]
    rows = silver(spark, lake, "silver.stop_executions").collect()
    assert [(r.execution_token, r.status, r.event_count) for r in rows] == [
        ("late", "SUBMITTED", 2)
    ]


PAIR = [event("x", T, "2024-12-27 10:00:00"), event("y", T, "2024-12-27 11:00:00")]
X_SUBMITTED = event("x", S, "2024-12-27 10:00:01", seq=20)
X_FILE = "bronze/events/date=2024-12-27/part-00000002-0000.parquet"


def test_a_daily_run_into_a_new_output_replays_its_partitions_whole(
    spark: SparkSession, lake: Path, tmp_path: Path
) -> None:
    write_bronze(lake, "events", PAIR)
    write_bronze(lake, "events", [X_SUBMITTED], name="part-00000002-0000")
    # Nothing is published in silver.stop_executions_v2: "y", untouched by the new
    # file, is replayed with "x" because its partition is rewritten whole.
    code, result = run(
        lake, tmp_path, "silver.stop_executions", "--dates", "2024-12-27",
        "--new-files", X_FILE, "--output", "silver.stop_executions_v2",
    )  # fmt: skip
    assert code == 0, result["error"]
    rows = spark.read.parquet(str(lake / "silver/stop_executions_v2")).collect()
    assert sorted((r.execution_token, r.event_count) for r in rows) == [("x", 2), ("y", 1)]


def test_a_daily_run_over_a_damaged_partition_fails_reconciliation(
    spark: SparkSession, lake: Path, tmp_path: Path
) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    write_bronze(lake, "events", PAIR)
    code, _ = run(lake, tmp_path, "silver.stop_executions")
    assert code == 0
    # Somebody rewrites the published partition without "y".
    (path,) = (lake / "silver/stop_executions/client_id=1/date=2024-12-27").glob("*.parquet")
    table = pq.read_table(path)
    path.unlink()
    pq.write_table(table.filter(pc.field("execution_token") == "x"), path.with_name("x.parquet"))
    damaged = files(lake, "silver.stop_executions")

    write_bronze(lake, "events", [X_SUBMITTED], name="part-00000002-0000")
    code, result = run(
        lake, tmp_path, "silver.stop_executions", "--dates", "2024-12-27",
        "--new-files", X_FILE, "--overwrite",
    )  # fmt: skip
    assert code == 3, result["error"]
    failed = {c["check"]: c["observed"] for c in result["checks"] if not c["passed"]}
    assert set(failed) == {"row_count_matches_bronze"}
    assert files(lake, "silver.stop_executions") == damaged  # nothing published


def test_a_failed_critical_check_publishes_nothing(lake: Path, tmp_path: Path) -> None:
    write_bronze(
        lake,
        "events",
        [
            event("x", T, "2024-12-27 10:00:00"),
            event("x", X, "2024-12-27 10:00:01", fill_price="90000", slippage_pct="80"),
            event("y", T, "2024-12-28 10:00:00"),
            event("y", X, "2024-12-28 10:00:01"),  # EXECUTED without a fill price
        ],
    )
    code, result = run(lake, tmp_path, "silver.stop_executions")
    assert code == 3
    assert result["status"] == "checks_failed"
    failed = {c["check"]: c["observed"] for c in result["checks"] if not c["passed"]}
    first, second = "client_id=1/date=2024-12-27", "client_id=1/date=2024-12-28"
    assert failed == {
        "slippage_within_50_pct": f"1 rows beyond ±50%; max |slippage| 80 in {first}",
        "executed_has_fill_price": f"1 EXECUTED rows without fill_price in {second}",
        "executed_has_slippage": f"1 EXECUTED rows without slippage_pct in {second}",
    }
    assert result["published"] is False
    assert "nothing published" in result["error"]
    assert files(lake, "silver.stop_executions") == {}
    assert files(lake, "_staging/run-7/silver.stop_executions")  # kept to look into


def test_operations_and_portfolio_snapshots_end_to_end(
    spark: SparkSession, lake: Path, tmp_path: Path
) -> None:
    write_bronze(lake, "events", EVENTS[:3])
    write_bronze(
        lake,
        "orders",
        [
            order(100, "SELL", "0.5", "95100", "2024-12-26 09:00:00", fee="0.1"),
            order(100, "BUY", "0.5", "95000", "2024-12-26 10:00:02", fee="0.1"),
            order(101, "BUY", "1", "10", "2024-12-27 09:00:00", client_id=2),
        ],
    )
    write_bronze(
        lake,
        "portfolio",
        [
            snapshot(1, "2024-12-26 00:00:00", "1000"),
            snapshot(1, "2024-12-27 00:00:00", "1050"),
            snapshot(2, "2024-12-27 00:00:00", "10"),
        ],
    )
    # Before its stop events are replayed, operation 100's strategy is unknown (0).
    code, result = run(lake, tmp_path, "silver.operations")
    assert code == 0, result["error"]
    assert sorted(files(lake, "silver.operations")) == [
        "strategy_id=0/date=2024-12-26",
        "strategy_id=0/date=2024-12-27",
    ]
    assert run(lake, tmp_path, "silver.stop_executions")[0] == 0

    # Then it moves to strategy 7: its old partition goes, rather than keeping a copy.
    code, result = run(lake, tmp_path, "silver.operations", "--overwrite")
    assert code == 0, result["error"]
    assert result["inputs"] == {"bronze.orders": 3, "silver.stop_executions": 1}
    assert result["partitions"] == [
        "strategy_id=0/date=2024-12-26",
        "strategy_id=0/date=2024-12-27",
        "strategy_id=7/date=2024-12-26",
    ]
    assert result["removed_partitions"] == ["strategy_id=0/date=2024-12-26"]
    assert sorted(files(lake, "silver.operations")) == [
        "strategy_id=0/date=2024-12-27",
        "strategy_id=7/date=2024-12-26",
    ]
    rows = {r.operation_id: r for r in silver(spark, lake, "silver.operations").collect()}
    assert (rows[100].status, str(rows[100].realized_pnl), rows[100].stop_fired) == (
        "CLOSED",
        "49.80000000",
        True,
    )
    assert (rows[101].status, rows[101].strategy_id) == ("OPEN", 0)

    code, result = run(lake, tmp_path, "silver.portfolio_snapshots")
    assert code == 0, result["error"]
    assert result["outputs"] == {"silver.portfolio_snapshots": 3}
    returns = {
        (r.client_id, str(r.date)): str(r.cumulative_return)
        for r in silver(spark, lake, "silver.portfolio_snapshots").collect()
    }
    assert returns == {
        (1, "2024-12-26"): "0E-10",
        (1, "2024-12-27"): "0.0500000000",
        (2, "2024-12-27"): "0E-10",
    }


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (["silver.nope"], 2, "bad arguments: unknown job 'silver.nope'"),
        (["silver.stop_executions", "--dates", "2024-13-01"], 2, "not a date"),
        (
            ["silver.stop_executions", "--output", "silver.operations"],
            2,
            "is not silver.stop_executions or a suffixed variant",
        ),
        (["diagnostics.fail"], 1, "RuntimeError: diagnostics.fail: deliberate failure"),
        (["diagnostics.sleep", "--seconds", "0"], 0, None),
    ],
)
def test_exit_codes_and_result_file(
    spark: SparkSession, lake: Path, tmp_path: Path, args: list[str], code: int, error: str | None
) -> None:
    got, result = run(lake, tmp_path, *args)
    assert got == code
    assert result["status"] == ("succeeded" if code == 0 else "failed")
    if error is None:
        assert result["error"] is None
    else:
        assert error in result["error"]
    assert "total" in result["seconds"]
    # The shared session survives: main() stops only a session it created.
    assert spark.range(1).count() == 1
