"""silver.stop_executions: event replay, scope of an incremental run, quality gates."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs.common.checks import run_checks
from spark_jobs.main import main
from spark_jobs.silver.stop_executions import (
    EXECUTION_NAMESPACE,
    SCHEMA,
    build_stop_executions,
    events_of,
    execution_partitions,
    merge_increment,
    plan_increment,
    quality_checks,
    uuid5_column,
)
from tests.spark_jobs.builders import day, event, events_frame, ts, utc, write_bronze

pytestmark = pytest.mark.spark

BUILT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
T, S, X, F_, B = "STOP_TRIGGERED", "EXECUTION_SUBMITTED", "EXECUTED", "FAILED", "BLOCKED"


def replay(spark: SparkSession, rows: list[dict]) -> DataFrame:
    return build_stop_executions(events_frame(spark, rows), built_at=BUILT)


def test_every_status_path_replays_to_the_right_row(spark: SparkSession) -> None:
    d = "2024-12-27 10:00:0"
    rows = [
        # executed at the first attempt
        event("exec", T, d + "0"),
        event("exec", S, d + "1"),
        event("exec", X, d + "2", fill_price="94990", slippage_pct="0.1157", exchange_order_id="7"),
        # failed, retried, then executed
        event("retry", T, d + "0"),
        event("retry", S, d + "1"),
        event("retry", F_, d + "2", error_message="ReadTimeout"),
        event("retry", S, d + "3", retry_count=1),
        event("retry", X, d + "4", retry_count=1, fill_price="94980", slippage_pct="0.1262"),
        # failed out after a retry: the last failure wins
        event("failout", T, d + "0"),
        event("failout", S, d + "1"),
        event("failout", F_, d + "2", error_message="code=-1021"),
        event("failout", S, d + "3", retry_count=1),
        event("failout", F_, d + "4", retry_count=1, error_message="code=-2010"),
        # blocked by each guard
        event("kill", T, d + "0"),
        event("kill", "KILL_SWITCH", d + "1", error_message="Kill switch active"),
        event("kill", B, d + "1", error_message="Kill switch active"),
        event("breaker", T, d + "0"),
        event("breaker", S, d + "1"),
        event("breaker", F_, d + "2", error_message="code=-1003"),
        event("breaker", "CIRCUIT_BREAKER", d + "3", error_message="Circuit breaker OPEN"),
        event("breaker", B, d + "3", error_message="Circuit breaker OPEN"),
        event("stale", T, d + "0"),
        event("stale", "STALE_PRICE", d + "1", error_message="Stale price"),
        # still in flight
        event("pending", T, d + "0"),
        event("submitted", T, d + "0"),
        event("submitted", S, d + "1"),
        # executed, then flagged: the breach does not change the status
        event("breach", T, d + "0"),
        event("breach", S, d + "1"),
        event("breach", X, d + "2", fill_price="92000", slippage_pct="3.2597"),
        event("breach", "SLIPPAGE_BREACH", d + "3", fill_price="92000", slippage_pct="3.2597"),
    ]
    columns = (
        "execution_token string, status string, retry_count int, submitted_at timestamp, "
        "executed_at timestamp, failed_at timestamp, fill_price decimal(20,8), "
        "slippage_pct decimal(10,4), slippage_breach boolean, error_message string, "
        "event_count int"
    )
    at = {n: ts(d + str(n)) for n in range(5)}
    D, n = Decimal, None
    expected = spark.createDataFrame(
        [
            ("exec", "EXECUTED", 0, at[1], at[2], n, D("94990"), D("0.1157"), False, n, 3),
            ("retry", "EXECUTED", 1, at[1], at[4], at[2], D("94980"), D("0.1262"), False,
             "ReadTimeout", 5),
            ("failout", "FAILED", 1, at[1], n, at[4], n, n, False, "code=-2010", 5),
            ("kill", "BLOCKED", 0, n, n, n, n, n, False, "Kill switch active", 3),
            ("breaker", "BLOCKED", 0, at[1], n, at[2], n, n, False, "Circuit breaker OPEN", 5),
            ("stale", "BLOCKED", 0, n, n, n, n, n, False, "Stale price", 2),
            ("pending", "PENDING", 0, n, n, n, n, n, False, n, 1),
            ("submitted", "SUBMITTED", 0, at[1], n, n, n, n, False, n, 2),
            ("breach", "EXECUTED", 0, at[1], at[2], n, D("92000"), D("3.2597"), True, n, 4),
        ],
        columns,
    )  # fmt: skip
    actual = replay(spark, rows).select(*[c.split()[0] for c in columns.split(", ")])
    assertDataFrameEqual(actual, expected)


def test_resolved_at_is_the_last_state_changing_event(spark: SparkSession) -> None:
    d = "2024-12-27 10:00:0"
    rows = [
        event("retried", "STOP_TRIGGERED", d + "0"),
        event("retried", "EXECUTION_SUBMITTED", d + "1"),
        event("retried", "FAILED", d + "2"),
        event("retried", "EXECUTION_SUBMITTED", d + "3"),
        event("retried", "EXECUTED", d + "4", fill_price="1", slippage_pct="20"),
        event("retried", "SLIPPAGE_BREACH", d + "5"),  # changes no status
        event("kill", "STOP_TRIGGERED", d + "0"),
        event("kill", "KILL_SWITCH", d + "6"),
        event("kill", "BLOCKED", d + "7"),
        event("open", "STOP_TRIGGERED", d + "8"),
    ]
    resolved = {r.execution_token: r.resolved_at for r in replay(spark, rows).collect()}
    assert resolved == {"retried": utc(d + "4"), "kill": utc(d + "7"), "open": utc(d + "8")}


def test_identity_trigger_fields_and_lineage(spark: SparkSession) -> None:
    rows = [
        event("tok", T, "2024-12-27 10:00:00", seq=11, source="cron", operation_id=42),
        event("tok", S, "2024-12-27 10:00:01", seq=12, source="cron", operation_id=42),
    ]
    (row,) = replay(spark, rows).collect()
    assert row.execution_id == str(uuid.uuid5(EXECUTION_NAMESPACE, "tok"))
    assert (row.operation_id, row.client_id, row.strategy_id) == (42, 1, 7)
    assert (row.symbol, row.side, row.source) == ("BTCUSDC", "SELL", "cron")
    assert (row.stop_price, row.trigger_price, row.quantity) == (
        Decimal("95100.00000000"),
        Decimal("95000.00000000"),
        Decimal("0.50000000"),
    )
    assert row.triggered_at == utc("2024-12-27 10:00:00")
    assert (row.first_event_seq, row.last_event_seq) == (11, 12)
    assert row.source_event_ids == [r["event_id"] for r in rows]
    assert row.created_at == BUILT.replace(tzinfo=None)
    assert row.date == day("2024-12-27")


def test_execution_id_is_python_uuid5_of_the_token(spark: SparkSession) -> None:
    tokens = [str(uuid.UUID(int=n * 7919)) for n in range(1, 40)] + ["x", "exécution-ü", ""]
    frame = spark.createDataFrame([(t,) for t in tokens], "token string")
    got = dict(frame.select("token", uuid5_column(F.col("token")).alias("id")).collect())
    assert got == {t: str(uuid.uuid5(EXECUTION_NAMESPACE, t)) for t in tokens}


def test_an_execution_that_spans_midnight_lands_whole_on_its_trigger_date(
    spark: SparkSession,
) -> None:
    rows = [
        event("night", T, "2024-12-27 23:59:50"),
        event("night", S, "2024-12-28 00:00:05"),
        event("night", X, "2024-12-28 00:00:06", fill_price="95000", slippage_pct="0.1052"),
    ]
    (row,) = replay(spark, rows).collect()
    assert (row.client_id, row.date, row.status, row.event_count) == (
        1,
        day("2024-12-27"),
        "EXECUTED",
        3,
    )


def test_a_late_recorded_event_takes_its_place_by_occurrence_time(spark: SparkSession) -> None:
    # FAILED occurred second but was recorded last (event_seq 90): the replay must still
    # end on EXECUTED, and source_event_ids follow occurrence order.
    rows = [
        event("late", T, "2024-12-27 10:00:00", seq=1),
        event("late", S, "2024-12-27 10:00:01", seq=2),
        event("late", F_, "2024-12-27 10:00:02", seq=90, error_message="code=-1001"),
        event("late", S, "2024-12-27 10:00:03", seq=3, retry_count=1),
        event("late", X, "2024-12-27 10:00:04", seq=4, retry_count=1, fill_price="95000"),
    ]
    (row,) = replay(spark, list(reversed(rows))).collect()
    assert row.status == "EXECUTED"
    assert row.failed_at == utc("2024-12-27 10:00:02")
    assert row.retry_count == 1
    assert (row.first_event_seq, row.last_event_seq) == (1, 90)
    assert row.source_event_ids == [r["event_id"] for r in rows]


def test_simultaneous_events_replay_in_event_seq_order(spark: SparkSession) -> None:
    rows = [
        event("same", T, "2024-12-27 10:00:00", seq=1),
        event("same", "KILL_SWITCH", "2024-12-27 10:00:01", seq=2),
        event("same", B, "2024-12-27 10:00:01", seq=3),
    ]
    (row,) = replay(spark, rows).collect()
    assert row.status == "BLOCKED"
    assert row.source_event_ids == [r["event_id"] for r in rows]


def test_bronze_duplicates_count_once_and_tokenless_events_not_at_all(spark: SparkSession) -> None:
    rows = [
        event("dup", T, "2024-12-27 10:00:00"),
        event("dup", S, "2024-12-27 10:00:01"),
        event("dup", X, "2024-12-27 10:00:02", fill_price="95000"),
    ]
    orphan = {**event("dup", T, "2024-12-27 10:00:00"), "execution_token": None}
    (row,) = replay(spark, [*rows, *rows[1:], orphan]).collect()
    assert row.event_count == 3
    assert row.source_event_ids == [r["event_id"] for r in rows]


def tokens(spark: SparkSession, *names: str) -> DataFrame:
    return spark.createDataFrame([(n,) for n in names], "execution_token string")


def test_an_increment_covers_the_partitions_of_the_touched_executions(
    spark: SparkSession,
) -> None:
    rows = [
        # triggered on the 27th, finished on the 28th
        event("night", T, "2024-12-27 23:59:50"),
        event("night", S, "2024-12-28 00:00:05"),
        # blocked on the 20th, submitted and executed a week later: still the 20th's
        event("week", T, "2024-12-20 09:00:00"),
        event("week", B, "2024-12-20 09:00:01"),
        event("week", S, "2024-12-27 09:00:00"),
        event("on-the-day", T, "2024-12-28 09:00:00", client_id=3),
        # no trigger in bronze: it belongs to its first event's day
        event("no-trigger", S, "2024-12-28 10:00:00", client_id=4),
        # two clients under one token: quarantined, its partition not rewritten for it
        event("mixed", T, "2024-12-25 10:00:00", client_id=5),
        event("mixed", S, "2024-12-25 10:00:01", client_id=6),
    ]
    located = execution_partitions(events_frame(spark, rows))
    previous = spark.createDataFrame([], "execution_token string, client_id long, date date")
    plan = plan_increment(located, previous)
    assert plan.partitions == {
        "client_id=1/date=2024-12-20": day("2024-12-20"),
        "client_id=1/date=2024-12-27": day("2024-12-27"),
        "client_id=3/date=2024-12-28": day("2024-12-28"),
        "client_id=4/date=2024-12-28": day("2024-12-28"),
    }
    assert plan.executions == 4
    assert plan.quarantined == ("mixed",)


def test_an_increment_covers_where_an_execution_was_published_before(
    spark: SparkSession,
) -> None:
    # As published by earlier runs, wherever that was (found by token, any date).
    previous = spark.createDataFrame(
        [
            ("late-trigger", 1, day("2024-12-28")),  # its trigger was not exported yet
            ("now-mixed", 2, day("2024-12-10")),  # gets an event of another client
        ],
        "execution_token string, client_id long, date date",
    )
    rows = [
        event("late-trigger", T, "2024-12-27 23:59:58"),  # the late export, dated the 27th
        event("late-trigger", S, "2024-12-28 00:00:03"),
        event("now-mixed", T, "2024-12-10 08:00:00", client_id=2),
        event("now-mixed", S, "2024-12-20 08:00:00", client_id=1),
    ]
    plan = plan_increment(execution_partitions(events_frame(spark, rows)), previous)
    # The 28th loses "late-trigger"; the 10th loses "now-mixed", which goes to quarantine.
    assert sorted(plan.partitions) == [
        "client_id=1/date=2024-12-27",
        "client_id=1/date=2024-12-28",
        "client_id=2/date=2024-12-10",
    ]
    assert plan.executions == 1
    assert plan.quarantined == ("now-mixed",)


def test_events_of_finds_an_executions_events_on_any_date(spark: SparkSession) -> None:
    rows = [
        event("slow", T, "2024-12-01 10:00:00"),
        event("other", T, "2024-12-01 10:00:00"),
        event("slow", S, "2024-12-11 10:00:00"),  # ten days later
        event("other", S, "2024-12-05 10:00:00"),
    ]
    found = events_of(events_frame(spark, rows), tokens(spark, "slow"))
    assert sorted((r.execution_token, str(r.date)) for r in found.collect()) == [
        ("slow", "2024-12-01"),
        ("slow", "2024-12-11"),
    ]


def test_a_token_spanning_clients_is_never_merged_into_one_row(spark: SparkSession) -> None:
    rows = [
        event("shared", T, "2024-12-27 10:00:00", client_id=1),
        event("shared", F_, "2024-12-27 10:00:01", client_id=2, error_message="client 2's"),
        event("alone", T, "2024-12-27 10:00:00", client_id=2),
    ]
    assert [r.execution_token for r in replay(spark, rows).collect()] == ["alone"]
    located = {
        r.execution_token: r.mixed
        for r in execution_partitions(events_frame(spark, rows)).collect()
    }
    assert located == {"shared": True, "alone": False}


def test_an_increment_replaces_rebuilt_executions_and_keeps_the_others(
    spark: SparkSession,
) -> None:
    current = replay(
        spark,
        [
            event("moved", S, "2024-12-28 00:00:03"),  # its trigger was not exported yet
            event("stays", T, "2024-12-28 08:00:00"),
            event("grows", T, "2024-12-27 10:00:00"),
            event("elsewhere", T, "2024-12-27 10:00:00", client_id=2),  # not in scope
        ],
    )
    new_events = [
        event("moved", T, "2024-12-27 23:59:58"),
        event("moved", S, "2024-12-28 00:00:03"),
        event("grows", T, "2024-12-27 10:00:00"),
        event("grows", S, "2024-12-27 10:00:01"),
    ]
    rebuilt = tokens(spark, "moved", "grows")
    scope = ["client_id=1/date=2024-12-27", "client_id=1/date=2024-12-28"]
    merged = merge_increment(replay(spark, new_events), rebuilt, current, scope)
    got = sorted((r.execution_token, str(r.date), r.event_count) for r in merged.collect())
    assert got == [
        ("grows", "2024-12-27", 2),
        ("moved", "2024-12-27", 2),
        ("stays", "2024-12-28", 1),
    ]


# --- quality gates -----------------------------------------------------------------------


def _good(spark: SparkSession) -> DataFrame:
    """Return clean silver rows, checkpointed as staged files would be (a short plan)."""
    return replay(
        spark,
        [
            event("a", T, "2024-12-27 10:00:00"),
            event("a", S, "2024-12-27 10:00:01"),
            event("a", X, "2024-12-27 10:00:02", fill_price="95000", slippage_pct="-1.5"),
            event("b", T, "2024-12-27 11:00:00", client_id=2),
        ],
    ).localCheckpoint()


def _results(frame: DataFrame, expected_rows: int) -> dict[str, tuple[bool, str, bool]]:
    results = run_checks(
        frame, "silver.stop_executions", quality_checks(expected_rows), ("client_id", "date")
    )
    return {r.check: (r.passed, r.observed, r.critical) for r in results}


def test_quality_gates_pass_on_clean_rows_and_report_what_they_saw(spark: SparkSession) -> None:
    results = _results(_good(spark), expected_rows=2)
    assert all(passed for passed, _, _ in results.values()), results
    assert results["slippage_within_50_pct"][1] == "0 rows beyond ±50%; max |slippage| 1.5"
    assert results["execution_id_not_null"][1] == "0 nulls"
    assert results["row_count_matches_bronze"][1] == (
        "2 rows; 2 expected from distinct bronze execution_tokens"
    )


@pytest.mark.parametrize(
    ("check", "break_row", "observed"),
    [
        ("execution_id_not_null", {"execution_id": None}, "1 nulls in client_id=1/date=2024-12-27"),
        ("operation_id_not_null", {"operation_id": None}, "1 nulls in client_id=1/date=2024-12-27"),
        ("status_not_null", {"status": None}, "1 nulls in client_id=1/date=2024-12-27"),
        ("status_known", {"status": "DONE"}, "1 unknown statuses in client_id=1/date=2024-12-27"),
        (
            "slippage_within_50_pct",
            {"slippage_pct": Decimal("-50.0100")},
            "1 rows beyond ±50%; max |slippage| 50.01 in client_id=1/date=2024-12-27",
        ),
        (
            "executed_has_fill_price",
            {"fill_price": None},
            "1 EXECUTED rows without fill_price in client_id=1/date=2024-12-27",
        ),
        (
            "execution_id_unique",
            {"execution_id": str(uuid.uuid5(EXECUTION_NAMESPACE, "b"))},
            "1 duplicated execution_id in client_id=1/date=2024-12-27, client_id=2/date=2024-12-27",
        ),
    ],
)  # fmt: skip
def test_each_critical_gate_fails_on_a_crafted_bad_row(
    spark: SparkSession, check: str, break_row: dict, observed: str
) -> None:
    good = _good(spark)
    bad = good.withColumns(
        {
            c: F.when(
                F.col("execution_token") == "a", F.lit(v).cast(good.schema[c].dataType)
            ).otherwise(F.col(c))
            for c, v in break_row.items()
        }
    )
    results = _results(bad, expected_rows=2)
    assert results[check] == (False, observed, True)
    assert [name for name, (passed, _, _) in results.items() if not passed] == [check]


def test_reconciliation_fails_when_rows_do_not_match_bronze(spark: SparkSession) -> None:
    results = _results(_good(spark), expected_rows=3)
    assert results["row_count_matches_bronze"] == (
        False,
        "2 rows; 3 expected from distinct bronze execution_tokens",
        True,
    )


# --- late arrivals: daily runs give exactly the silver of a full rebuild -----------------

PATHS = (
    (T, S, X),
    (T, S, F_),
    (T, S, F_, S, X),
    (T, "KILL_SWITCH", B),
    (T, "STALE_PRICE"),
    (T, S),
)


def late_exports(seed: int, executions: int = 24, exports: int = 5) -> list[list[dict]]:
    """Return bronze exports (lists of events) of ``executions`` random executions.

    Each execution starts on one of four days (at any second, so some span midnight);
    each of its later events comes seconds after the one before, or 0-10 days later.
    Every event lands in a random export, so a trigger may be exported after the events
    that follow it; one event is exported twice (a bronze duplicate), and one execution
    may get an event of another client (a token spanning clients).
    """
    rng = random.Random(seed)
    made: list[tuple[datetime, dict]] = []
    for n in range(executions):
        client = rng.choice((1, 2))
        at = datetime(2024, 12, 1) + timedelta(days=rng.randrange(4), seconds=rng.randrange(86400))
        for i, kind in enumerate(rng.choice(PATHS)):
            if i:
                late = rng.random() < 0.3
                at += timedelta(days=rng.randint(0, 10)) if late else timedelta(seconds=1)
                at += timedelta(seconds=rng.randrange(60))
            made.append((at, {"token": f"t{n}", "kind": kind, "client": client, "retry": i // 3}))
    if rng.random() < 0.6:
        at, spec = rng.choice(made)
        made.append((at + timedelta(seconds=5), {**spec, "kind": S, "client": 3}))
    placed = [(rng.randrange(exports), at, spec) for at, spec in made]
    batches: list[list[dict]] = [[] for _ in range(exports)]
    # event_seq follows export order (what the backend recorded first comes first).
    for seq, (batch, at, spec) in enumerate(sorted(placed, key=lambda p: (p[0], p[1])), 1):
        outcome = {}
        if spec["kind"] == X:
            outcome = {"fill_price": "95000", "slippage_pct": "0.1052", "exchange_order_id": "9"}
        elif spec["kind"] in (F_, B, "KILL_SWITCH", "STALE_PRICE"):
            outcome = {"error_message": f"{spec['kind']} {seq}"}
        batches[batch].append(
            event(
                spec["token"],
                spec["kind"],
                at.strftime("%Y-%m-%d %H:%M:%S"),
                seq=seq,
                client_id=spec["client"],
                operation_id=100 + int(spec["token"][1:]),
                retry_count=spec["retry"],
                **outcome,
            )
        )
    duplicated = rng.choice([e for batch in batches for e in batch])
    batches[rng.randrange(exports)].append(dict(duplicated))
    return [batch for batch in batches if batch]


def run_job(lake: Path, tmp_path: Path, *args: str) -> dict:
    """Run silver.stop_executions in-process (the shared session); return its result."""
    result = tmp_path / f"result-{len(list(tmp_path.glob('result-*')))}.json"
    code = main(
        ["silver.stop_executions", "--lake-uri", str(lake), "--run-id", "9",
         "--result-file", str(result), "--overwrite", *args]
    )  # fmt: skip
    outcome = json.loads(result.read_text())
    assert code == 0, outcome["error"]
    assert not [c for c in outcome["checks"] if c["critical"] and not c["passed"]]
    return outcome


def published(spark: SparkSession, lake: Path, dataset: str) -> DataFrame:
    return (
        spark.read.schema(SCHEMA)
        .parquet(str(lake / dataset.replace(".", "/")))
        .drop("created_at")
        .localCheckpoint()
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_daily_runs_over_late_arrivals_give_the_silver_of_a_full_rebuild(
    spark: SparkSession, lake: Path, tmp_path: Path, seed: int
) -> None:
    exports = late_exports(seed)
    rng = random.Random(seed)
    for n, batch in enumerate(exports):
        files = write_bronze(lake, "events", batch, name=f"part-{n:08d}-0000")
        if n == 0:
            run_job(lake, tmp_path)  # the first run is a full build, as run_silver's
            continue
        dates = sorted({str(e["date"]) for e in batch})
        args = ["--dates", ",".join(dates)]
        if rng.random() < 0.7:  # else every event of those dates counts as new
            keys = [str(f.relative_to(lake)) for f in files]
            args += ["--new-files", ",".join(keys)]
        outcome = run_job(lake, tmp_path, *args)
        assert "execution_id_unique_in_dataset" in {c["check"] for c in outcome["checks"]}
    run_job(lake, tmp_path, "--output", "silver.stop_executions_v2")

    daily = published(spark, lake, "silver.stop_executions")
    rebuilt = published(spark, lake, "silver.stop_executions_v2")
    assertDataFrameEqual(daily, rebuilt)
    tokens = {e["execution_token"] for batch in exports for e in batch}
    mixed = {
        t
        for t in tokens
        if len({e["client_id"] for b in exports for e in b if e["execution_token"] == t}) > 1
    }
    assert {r.execution_token for r in rebuilt.collect()} == tokens - mixed


def test_an_execution_id_published_outside_the_rewritten_partitions_fails(
    spark: SparkSession,
) -> None:
    good = _good(spark)
    # "a" is also published on the 20th, a partition the run does not rewrite.
    elsewhere = good.filter(F.col("execution_token") == "a").withColumn(
        "date", F.lit(day("2024-12-20"))
    )
    checks = quality_checks(2, quarantined=1, elsewhere=elsewhere)
    results = {
        r.check: (r.passed, r.observed, r.critical)
        for r in run_checks(good, "silver.stop_executions", checks, ("client_id", "date"))
    }
    assert results["execution_id_unique_in_dataset"] == (
        False,
        "1 execution_id also in partitions this run does not rewrite"
        " in client_id=1/date=2024-12-20",
        True,
    )
    assert results["execution_token_single_client"] == (
        False,
        "1 executions quarantined (execution_token spans clients)",
        False,
    )


# --- through main(): the cases ----------------------------------------------------


def rows_of(spark: SparkSession, lake: Path, dataset: str) -> list[tuple]:
    return sorted(
        (r.execution_token, r.client_id, str(r.date), r.status, r.event_count)
        for r in published(spark, lake, dataset).collect()
    )


def test_events_three_days_late_update_the_execution_in_place(
    spark: SparkSession, lake: Path, tmp_path: Path
) -> None:
    write_bronze(
        lake,
        "events",
        [
            event("slow", T, "2024-12-20 10:00:00", seq=1),
            event("slow", B, "2024-12-20 10:00:01", seq=2, error_message="Kill switch"),
            event("other", T, "2024-12-23 09:00:00", seq=3),
        ],
    )
    run_job(lake, tmp_path)
    late = [
        event("slow", S, "2024-12-23 10:00:00", seq=4),
        event("slow", X, "2024-12-23 10:00:01", seq=5, fill_price="95000", slippage_pct="0.1"),
    ]
    (path,) = write_bronze(lake, "events", late, name="part-00000002-0000")
    outcome = run_job(
        lake, tmp_path, "--dates", "2024-12-23", "--new-files", str(path.relative_to(lake))
    )
    assert outcome["partitions"] == ["client_id=1/date=2024-12-20"]
    assert rows_of(spark, lake, "silver.stop_executions") == [
        ("other", 1, "2024-12-23", "PENDING", 1),
        ("slow", 1, "2024-12-20", "EXECUTED", 4),
    ]
    # A backfill of the later day alone publishes no partial row of "slow"; one of the
    # earlier day replays it whole, with its events from after the range.
    for first, last in (("2024-12-23", "2024-12-23"), ("2024-12-20", "2024-12-20")):
        run_job(lake, tmp_path, "--start-date", first, "--end-date", last,
                "--output", "silver.stop_executions_v2")  # fmt: skip
    assert rows_of(spark, lake, "silver.stop_executions_v2") == rows_of(
        spark, lake, "silver.stop_executions"
    )


def test_a_token_spanning_clients_is_quarantined_and_leaves_its_partition(
    spark: SparkSession, lake: Path, tmp_path: Path
) -> None:
    write_bronze(lake, "events", [event("shared", T, "2024-12-20 10:00:00", client_id=1)])
    run_job(lake, tmp_path)
    assert rows_of(spark, lake, "silver.stop_executions") == [
        ("shared", 1, "2024-12-20", "PENDING", 1)
    ]
    other = event("shared", F_, "2024-12-22 10:00:00", client_id=2, error_message="client 2's")
    write_bronze(lake, "events", [other], name="part-00000002-0000")
    outcome = run_job(lake, tmp_path, "--dates", "2024-12-22")
    assert outcome["removed_partitions"] == ["client_id=1/date=2024-12-20"]
    assert not (lake / "silver/stop_executions/client_id=1/date=2024-12-20").exists()
    checks = {c["check"]: c for c in outcome["checks"]}
    assert checks["execution_token_single_client"]["passed"] is False
    assert checks["execution_token_single_client"]["critical"] is False
    assert checks["execution_token_single_client"]["observed"].startswith("1 executions")
    aside = spark.read.parquet(str(lake / "quarantine/silver/stop_executions/run=9"))
    assert sorted((r.client_id, r.reason) for r in aside.collect()) == [
        (1, "execution_token spans clients"),
        (2, "execution_token spans clients"),
    ]
    # A full rebuild quarantines it as well.
    outcome = run_job(lake, tmp_path, "--output", "silver.stop_executions_v2")
    assert outcome["outputs"] == {"silver.stop_executions_v2": 0}
