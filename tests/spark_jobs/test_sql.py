"""spark_jobs/sql.py: lake tables under dotted names, and the seed's queries as written."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import Row, SparkSession

from spark_jobs import sql
from spark_jobs.silver.stop_executions import build_stop_executions
from spark_jobs.sqltext import split_statements
from tests.spark_jobs.builders import event, events_frame, write_bronze

BUILT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
T, X = "STOP_TRIGGERED", "EXECUTED"

EVENTS = [
    event("a", T, "2024-12-26 10:00:00", client_id=1),
    event("a", X, "2024-12-26 10:00:01", client_id=1, fill_price="1", slippage_pct="0.1"),
    event("f", T, "2024-12-27 10:00:00", client_id=1),
    event("f", X, "2024-12-27 10:00:01", client_id=1, fill_price="1", slippage_pct="0.5"),
    event("night", T, "2024-12-27 23:59:59", client_id=1),
    event("b", T, "2024-12-27 09:00:00", client_id=2),
    event("e", T, "2024-12-27 09:00:00", client_id=2, symbol="ETHUSDC"),
    event("e", X, "2024-12-27 09:00:01", client_id=2, symbol="ETHUSDC", fill_price="1",
          slippage_pct="0.2"),
    event("c", T, "2024-12-28 09:00:00", client_id=2),
]  # fmt: skip

# The seed document's sample and monitoring queries, verbatim (datasets-README.md).
SUCCESS_RATE = """
SELECT
    client_id,
    COUNT(*) as total_executions,
    SUM(CASE WHEN status = 'EXECUTED' THEN 1 ELSE 0 END) as successful,
    SUM(CASE WHEN status = 'EXECUTED' THEN 1 ELSE 0 END) * 100.0 / COUNT(*) as success_rate_pct
FROM silver.stop_executions
WHERE date BETWEEN '2024-01-01' AND '2024-12-27'
GROUP BY client_id
ORDER BY success_rate_pct DESC;
"""
SLIPPAGE_BY_SYMBOL = """
SELECT
    symbol,
    AVG(slippage_pct) as avg_slippage_pct,
    PERCENTILE(slippage_pct, 0.5) as median_slippage_pct,
    PERCENTILE(slippage_pct, 0.95) as p95_slippage_pct
FROM silver.stop_executions
WHERE date BETWEEN '2024-01-01' AND '2024-12-27'
  AND slippage_pct IS NOT NULL
GROUP BY symbol
ORDER BY avg_slippage_pct ASC;
"""
ROWS_PER_DATE = """
SELECT date, COUNT(*) as row_count
FROM bronze.events
GROUP BY date
ORDER BY date DESC
LIMIT 30;
"""
NULL_PERCENTAGE = """
SELECT
    COUNT(*) as total_rows,
    COUNT(execution_id) as non_null_executions,
    COUNT(fill_price) as non_null_fill_prices,
    (COUNT(*) - COUNT(fill_price)) * 100.0 / COUNT(*) as null_fill_price_pct
FROM silver.stop_executions
WHERE date = '2024-12-27';
"""
BRONZE_FRESHNESS = """
SELECT
    CURRENT_TIMESTAMP - MAX(occurred_at) as max_lag
FROM bronze.events
WHERE date = '2024-12-27';
"""
SILVER_FRESHNESS = """
SELECT
    MAX(created_at) as last_silver_update,
    CURRENT_TIMESTAMP - MAX(created_at) as silver_lag
FROM silver.stop_executions
WHERE date = '2024-12-27';
"""


@pytest.fixture
def small_lake(spark: SparkSession, lake: Path) -> Path:
    """Return a lake with bronze.events (as exported) and silver.stop_executions."""
    write_bronze(lake, "events", EVENTS)
    executions = build_stop_executions(events_frame(spark, EVENTS), BUILT)
    executions.write.partitionBy("client_id", "date").parquet(str(lake / "silver/stop_executions"))
    (lake / "silver" / "not_a_dataset").mkdir()
    (lake / "silver" / "_tmp").mkdir()
    return lake


@pytest.mark.spark
def test_seed_queries_run_as_written(spark: SparkSession, small_lake: Path) -> None:
    tables = sql.register_lake_tables(spark, str(small_lake))
    assert tables == ["bronze.events", "silver.stop_executions"]

    def run(query: str) -> list[tuple]:
        (statement,) = split_statements(query)
        return [tuple(row) for row in spark.sql(statement).collect()]

    cent = Decimal("0.01")
    assert [(*r[:3], r[3].quantize(cent)) for r in run(SUCCESS_RATE)] == [
        (1, 3, 2, Decimal("66.67")),
        (2, 2, 1, Decimal("50.00")),
    ]
    rows = run(SLIPPAGE_BY_SYMBOL)
    assert [r[0] for r in rows] == ["ETHUSDC", "BTCUSDC"]
    assert rows[1][1] == Decimal("0.30000000")
    assert rows[1][2:] == pytest.approx((0.3, 0.48))
    assert [(str(d), n) for d, n in run(ROWS_PER_DATE)] == [
        ("2024-12-28", 1),
        ("2024-12-27", 6),
        ("2024-12-26", 2),
    ]
    assert run(NULL_PERCENTAGE) == [(4, 4, 2, Decimal("50"))]
    ((lag,),) = run(BRONZE_FRESHNESS)
    assert lag > timedelta(days=300)
    ((last, silver_lag),) = run(SILVER_FRESHNESS)
    assert last == BUILT.replace(tzinfo=None)
    assert silver_lag > timedelta(0)


@pytest.mark.spark
def test_command_line_prints_one_result_per_statement(
    spark: SparkSession, small_lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queries = tmp_path / "queries.sql"
    queries.write_text(
        "-- the seed's queries, in one file\n\n-- Success rate by client\n"
        + SUCCESS_RATE
        + ROWS_PER_DATE
    )
    output = tmp_path / "out.txt"
    code = sql.main(
        ["--lake-uri", str(small_lake), "--file", str(queries), "--output", str(output)]
    )
    assert code == 0
    assert capsys.readouterr().out == ""  # results go to --output only
    blocks = output.read_text().split("\n\n")
    assert blocks[0].splitlines()[:2] == [
        "-- Success rate by client",
        "client_id | total_executions | successful | success_rate_pct",
    ]
    assert blocks[0].endswith("(2 rows)")
    assert blocks[1].splitlines()[0] == "-- SELECT date, COUNT(*) as row_count"
    assert blocks[1].endswith("(3 rows)")
    assert spark.range(1).count() == 1  # the shared session is still up

    # JSON lines: decimals are strings in every row, timestamps UTC with Z.
    result_file = tmp_path / "result.json"
    code = sql.main(["--lake-uri", str(small_lake), "--query", SUCCESS_RATE, "--format", "json",
                     "--result-file", str(result_file)])  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == {"client_id": 1, "total_executions": 3, "successful": 2,
                       "success_rate_pct": "66.66666666666667"}  # fmt: skip
    assert isinstance(rows[1].pop("success_rate_pct"), str)  # 50, exact: still a string
    assert rows[1] == {"client_id": 2, "total_executions": 2, "successful": 1}
    assert json.loads(result_file.read_text()) == {
        "status": "succeeded", "statements": 1, "rows": 2, "error": ""
    }  # fmt: skip
    code = sql.main(["--lake-uri", str(small_lake), "--format", "json", "--query",
                     "SELECT MAX(created_at) AS t, MAX(created_at) - MIN(triggered_at) AS lag "
                     "FROM silver.stop_executions"])  # fmt: skip
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["t"] == "2025-01-02T03:04:05Z"
    assert re.fullmatch(r"P\d+DT\d+H\d+M[\d.]+S", record["lag"])

    # A percentage over a day without rows is NULL, as the seed's engines have it.
    empty_day = NULL_PERCENTAGE.replace("2024-12-27", "2030-01-01")
    assert sql.main(["--lake-uri", str(small_lake), "--query", empty_day, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "total_rows,non_null_executions,non_null_fill_prices,null_fill_price_pct",
        "0,0,0,",
    ]
    assert spark.conf.get("spark.sql.ansi.enabled") == "true"  # restored

    code = sql.main(["--lake-uri", str(small_lake), "--query", "SELECT * FROM silver.nope",
                     "--result-file", str(result_file)])  # fmt: skip
    assert code == 1
    assert "TABLE_OR_VIEW_NOT_FOUND" in capsys.readouterr().err
    result = json.loads(result_file.read_text())
    assert result["status"] == "failed"
    assert result["error"].startswith("[TABLE_OR_VIEW_NOT_FOUND]")


@pytest.mark.spark
def test_writes_are_refused_and_the_lake_is_unchanged(
    spark: SparkSession, small_lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.relative_to(small_lake) for p in small_lake.rglob("*"))
    for statement in [
        "INSERT INTO bronze.events SELECT * FROM bronze.events",
        "SELECT 1; DROP TABLE bronze.events",
        "WITH a AS (SELECT * FROM bronze.events) INSERT INTO bronze.events SELECT * FROM a",
    ]:
        assert sql.main(["--lake-uri", str(small_lake), "--query", statement]) == 2
        err = capsys.readouterr().err
        assert "only reads" in err
        assert len(err.strip().splitlines()) == 1
    # Spark's parser is the second line of defence, behind the text check.
    sql.register_lake_tables(spark, str(small_lake))
    for statement in [
        "INSERT INTO bronze.events SELECT * FROM bronze.events",
        "FROM bronze.events INSERT INTO bronze.events SELECT *",
        "WITH a AS (SELECT 1) INSERT OVERWRITE DIRECTORY '/tmp/x' SELECT * FROM a",
        "EXPLAIN INSERT INTO bronze.events SELECT * FROM bronze.events",
        "CACHE TABLE bronze.events",
        "SET spark.sql.ansi.enabled=true",
        "ADD JAR /tmp/x.jar",
        "CREATE TEMP VIEW v AS SELECT 1",
        "DROP TABLE bronze.events",
    ]:
        with pytest.raises(sql.NotReadOnly):
            sql.check_plan_read_only(spark, statement)
    for statement in [
        "SELECT * FROM bronze.events",
        "WITH a AS (SELECT 1) SELECT * FROM a",
        "SHOW CREATE TABLE bronze.events",
        "DESCRIBE bronze.events",
        "EXPLAIN SELECT * FROM bronze.events",
    ]:
        sql.check_plan_read_only(spark, statement)
    # Analysts read the lake's tables, not any path of the machine.
    query = f"SELECT * FROM parquet.`{small_lake}/silver/stop_executions`"
    assert sql.main(["--lake-uri", str(small_lake), "--query", query]) == 1
    assert "TABLE_OR_VIEW_NOT_FOUND" in capsys.readouterr().err  # parquet.`...` is no table
    assert sorted(p.relative_to(small_lake) for p in small_lake.rglob("*")) == before


@pytest.mark.unit
def test_values_print_exactly() -> None:
    assert sql.plain(Decimal("66.666667"), for_json=True) == "66.666667"
    assert sql.plain(Decimal("12345678901.12345678"), for_json=True) == "12345678901.12345678"
    assert sql.plain(Decimal("0E-10")) == "0.0000000000"
    assert sql.plain(timedelta(days=2, seconds=5)) == "P2DT0H0M5S"
    assert sql.plain(-timedelta(hours=1, microseconds=500)) == "-P0DT1H0M0.0005S"
    assert sql.plain(timedelta(0)) == "P0DT0H0M0S"
    assert sql.plain(datetime(2024, 12, 27, 10, 0, tzinfo=UTC)) == "2024-12-27T10:00:00Z"
    local = datetime(2024, 12, 27, 10, 0, tzinfo=UTC).astimezone().replace(tzinfo=None)
    assert sql.plain(local) == "2024-12-27T10:00:00Z"  # pyspark's naive local datetimes
    assert sql.plain(float("nan"), for_json=True) == "NaN"
    assert sql.plain(True) == "true"
    assert sql.plain({"a": Decimal("1.50"), "b": [1, None]}) == '{"a": "1.50", "b": [1, null]}'
    assert sql.plain(None) is None
    # A struct keeps its field names, in JSON and in text.
    struct = Row(a=1, b=Decimal("2.50"))
    assert sql.plain(struct, for_json=True) == {"a": 1, "b": "2.50"}
    assert sql.plain(struct) == '{"a": 1, "b": "2.50"}'
    assert sql.format_table(["a", "bb"], [["1", "x"], ["22", "NULL"]]) == (
        "a  | bb\n---+-----\n1  | x\n22 | NULL\n"
    )


LABEL_DISTRIBUTION = """
SELECT
    label.execution_success,
    COUNT(*) as sample_count,
    COUNT(*) * 100.0 / SUM(COUNT(*)) OVER() as percentage
FROM gold.training_sets.stop_outcome
WHERE version = 'v1.0.0'
GROUP BY label.execution_success;
"""


@pytest.mark.spark
def test_the_gold_label_distribution_query_runs_as_written(spark: SparkSession, lake: Path) -> None:
    root = lake / "gold/training_sets/stop_outcome"
    schema = "sample_id string, label struct<execution_success:boolean>"
    for version, split, flags in [
        ("v1.0.0", "train", [True, True, False]),
        ("v1.0.0", "test", [True]),
        ("v1.1.0", "train", [False] * 5),
    ]:
        rows = [(f"{version}-{split}-{i}", (flag,)) for i, flag in enumerate(flags)]
        path = root / version / split / "date=2024-12-26"
        spark.createDataFrame(rows, schema).write.parquet(str(path))
    (root / "v1.0.0" / "features.json").write_text("{}")

    assert sql.register_training_sets(spark, str(lake)) == ["gold.training_sets.stop_outcome"]
    (statement,) = split_statements(LABEL_DISTRIBUTION)
    rows = sorted(tuple(r) for r in spark.sql(sql.resolve_lake_names(statement)).collect())
    assert [(flag, count, pct.quantize(Decimal("0.01"))) for flag, count, pct in rows] == [
        (False, 1, Decimal("25.00")),
        (True, 3, Decimal("75.00")),
    ]
    per_split = (
        "SELECT version, split, COUNT(*) FROM robson_datalake.gold.training_sets.stop_outcome "
        "GROUP BY 1, 2"
    )
    assert sorted(tuple(r) for r in spark.sql(sql.resolve_lake_names(per_split)).collect()) == [
        ("v1.0.0", "test", 1),
        ("v1.0.0", "train", 3),
        ("v1.1.0", "train", 5),
    ]


VIEW = "global_temp.`gold__training_sets__stop_outcome`"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "resolved"),
    [
        ("SELECT * FROM gold.training_sets.stop_outcome", f"SELECT * FROM {VIEW}"),
        ("SELECT * FROM robson_datalake.gold.training_sets.stop_outcome", f"SELECT * FROM {VIEW}"),
        ("select * from ROBSON_DATALAKE.Gold.Training_Sets.Stop_Outcome", f"select * from {VIEW}"),
        ("SELECT * FROM robson_datalake.bronze.events WHERE date='2024-12-27' LIMIT 10",
         "SELECT * FROM bronze.events WHERE date='2024-12-27' LIMIT 10"),
        ("SELECT s.x FROM robson_datalake.silver.stop_executions s "
         "JOIN robson_datalake.gold.training_sets.a_b2 t ON s.x = t.x",
         "SELECT s.x FROM silver.stop_executions s "
         "JOIN global_temp.`gold__training_sets__a_b2` t ON s.x = t.x"),
        ("SELECT 'gold.training_sets.x', \"robson_datalake.bronze.e\" -- gold.training_sets.y",
         "SELECT 'gold.training_sets.x', \"robson_datalake.bronze.e\"  "),
        ("SELECT 1 /* robson_datalake.bronze.events */ FROM `robson_datalake.bronze.events`",
         "SELECT 1   FROM `robson_datalake.bronze.events`"),
        ("-- once a training set is built\nSELECT /*+ COALESCE(1) */ 1",
         " \nSELECT /*+ COALESCE(1) */ 1"),
        ("SELECT '-- /* not a comment' AS x", "SELECT '-- /* not a comment' AS x"),
        ("SELECT * FROM other.robson_datalake.bronze.events",
         "SELECT * FROM other.robson_datalake.bronze.events"),
        ("SELECT * FROM robson_datalake.other.t", "SELECT * FROM robson_datalake.other.t"),
        ("SELECT * FROM silver.stop_executions", "SELECT * FROM silver.stop_executions"),
    ],
)  # fmt: skip
def test_resolve_lake_names(text: str, resolved: str) -> None:
    assert sql.resolve_lake_names(text) == resolved


@pytest.mark.spark
def test_seed_catalog_names_run_on_the_one_off_path(
    spark: SparkSession, small_lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = "SELECT * FROM robson_datalake.bronze.events WHERE date='2024-12-27' LIMIT 10"
    assert sql.main(["--lake-uri", str(small_lake), "--query", seed, "--format", "csv"]) == 0
    through_catalog = sorted(capsys.readouterr().out.splitlines())
    plain_name = seed.replace("robson_datalake.", "")
    assert sql.main(["--lake-uri", str(small_lake), "--query", plain_name, "--format", "csv"]) == 0
    assert through_catalog == sorted(capsys.readouterr().out.splitlines())
    assert len(through_catalog) > 1  # a header and rows
