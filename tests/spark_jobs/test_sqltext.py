"""spark_jobs/sqltext.py: statements, their titles, and the read-only rule of lake_sql."""

from __future__ import annotations

import pytest

from spark_jobs import sqltext
from spark_jobs.sqltext import NotReadOnly, QueryRefused, Statement

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "statements"),
    [
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("-- the seed's queries\nSELECT 1;\n-- done\n", ["-- the seed's queries\nSELECT 1"]),
        ("SELECT 'a;b', \"c;d\", `e;f`; SELECT 2", ["SELECT 'a;b', \"c;d\", `e;f`", "SELECT 2"]),
        ("SELECT 'it''s; fine'; SELECT 'a\\';'", ["SELECT 'it''s; fine'", "SELECT 'a\\';'"]),
        ("/* a; b */ SELECT 1 /* ; */;;", ["/* a; b */ SELECT 1 /* ; */"]),
        (" ; -- nothing\n ;", []),
        # In a raw literal a backslash escapes nothing: Spark ends the literal at r'\'.
        ("SELECT r'\\'; SELECT 2; --'", ["SELECT r'\\'", "SELECT 2"]),
        ("SELECT bar'\\'; x'", ["SELECT bar'\\'; x'"]),
    ],
)  # fmt: skip
def test_split_statements(text: str, statements: list[str]) -> None:
    assert sqltext.split_statements(text) == statements


def test_titles_are_the_comment_line_before_each_statement() -> None:
    text = (
        "-- file header\n\n-- Success rate\nSELECT 1;\n"
        "SELECT   2 -- inline\n  FROM t;\n/* block */ -- Last\n SELECT 3"
    )
    assert sqltext.parse_statements(text) == [
        Statement("-- file header\n\n-- Success rate\nSELECT 1", "Success rate"),
        Statement("SELECT   2 -- inline\n  FROM t", "SELECT 2"),
        Statement("/* block */ -- Last\n SELECT 3", "Last"),
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM bronze.trades",
        "  -- why\n/* how */ select 1",
        "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
        "SHOW TABLES IN bronze",
        "SHOW CREATE TABLE bronze.events",
        "DESCRIBE TABLE EXTENDED silver.stop_executions",
        "DESC bronze.events",
        "EXPLAIN SELECT 1",
        "VALUES (1, 2)",
        "(SELECT 1) UNION (SELECT 2)",
        "TABLE bronze.events",
        "SELECT 'DROP TABLE x; INSERT INTO y' AS s, `update` FROM t",
        "SELECT collect_set(a), date_add(d, 1), replace(s, 'a', 'b') FROM t",
    ],
)
def test_read_only_statements_pass(statement: str) -> None:
    sqltext.check_read_only(statement)


@pytest.mark.parametrize(
    ("statement", "word"),
    [
        ("INSERT INTO bronze.trades SELECT * FROM bronze.trades", "INSERT"),
        ("DROP TABLE bronze.trades", "DROP"),
        ("-- looks harmless\n/* SELECT */ drop table bronze.trades", "DROP"),
        ("WITH a AS (SELECT 1) INSERT INTO bronze.trades SELECT * FROM a", "INSERT"),
        ("FROM bronze.trades INSERT INTO bronze.trades SELECT *", "FROM"),
        ("EXPLAIN INSERT INTO bronze.trades SELECT 1", "INSERT"),
        ("EXPLAIN EXTENDED CREATE TABLE t AS SELECT 1", "CREATE"),
        ("CACHE TABLE bronze.trades", "CACHE"),
        ("UNCACHE TABLE bronze.trades", "UNCACHE"),
        ("SET spark.sql.ansi.enabled=true", "SET"),
        ("RESET", "RESET"),
        ("ADD JAR /tmp/evil.jar", "ADD"),
        ("CREATE TEMP VIEW v AS SELECT 1", "CREATE"),
        ("CREATE OR REPLACE TABLE t USING parquet AS SELECT 1", "CREATE"),
        ("INSERT OVERWRITE DIRECTORY '/tmp/x' SELECT 1", "INSERT"),
        ("ALTER TABLE bronze.events DROP PARTITION (date='2024-01-01')", "ALTER"),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "MERGE"),
        ("DELETE FROM bronze.trades", "DELETE"),
        ("TRUNCATE TABLE bronze.trades", "TRUNCATE"),
        ("REFRESH TABLE bronze.trades", "REFRESH"),
        ("MSCK REPAIR TABLE bronze.trades", "MSCK"),
        ("LOAD DATA INPATH '/x' INTO TABLE t", "LOAD"),
        ("USE bronze", "USE"),
        ("EXECUTE IMMEDIATE 'DROP TABLE t'", "EXECUTE"),
        ("BEGIN SELECT 1; END", "BEGIN"),
        ("SELECT java_method('java.lang.System', 'exit', 1)", "JAVA_METHOD"),
        ("SELECT reflect('java.lang.System', 'setProperty', 'a', 'b')", "REFLECT"),
        ("-- only a comment", "empty statement"),
    ],
)
def test_writing_statements_are_refused(statement: str, word: str) -> None:
    with pytest.raises(NotReadOnly, match=word):
        sqltext.check_read_only(statement)


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("SELECT 1; DROP TABLE x", "table", "statement 2: DROP is not allowed"),
        ("SELECT ';' ; -- ;\n DROP TABLE x", "table", "statement 2: DROP"),
        ("SELECT 1 /* ; */; SELECT 2", "csv", "--format csv takes one statement, got 2"),
        ("SELECT 1; SELECT 2", "json", "--format json takes one statement, got 2"),
        ("-- nothing\n;", "table", "no SQL statement given"),
    ],
)
def test_check_statements_refuses(text: str, fmt: str, message: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        sqltext.check_statements(sqltext.parse_statements(text), fmt)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_check_statements_accepts_several_in_table_format() -> None:
    sqltext.check_statements(sqltext.parse_statements("SELECT 1; SHOW TABLES"), "table")
