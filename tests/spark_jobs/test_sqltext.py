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
        ("SELECT `java_method`('java.lang.System', 'exit', 0)", "JAVA_METHOD"),
        ("SELECT `Reflect`('java.lang.System', 'getProperty', 'user.home')", "REFLECT"),
        ("SELECT builtin.`try_reflect`('java.lang.System', 'exit', 0)", "TRY_REFLECT"),
        ("SELECT IDENTIFIER('java_method')('java.lang.System', 'exit', 0)", "IDENTIFIER"),
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


@pytest.mark.parametrize(
    ("statement", "word"),
    [
        # Spark 4 parses each of these and runs it without the clause: the keyword becomes
        # the alias of the table or the column before it.
        ("SELECT * FROM silver.stop_executions WHERE", "WHERE"),
        ("SELECT * FROM silver.stop_executions where -- the date, later", "WHERE"),
        ("SELECT * FROM t GROUP", "GROUP"),
        ("SELECT * FROM t ORDER", "ORDER"),
        ("SELECT * FROM t HAVING", "HAVING"),
        ("SELECT * FROM t LIMIT", "LIMIT"),
        ("SELECT * FROM t OFFSET", "OFFSET"),
        ("SELECT * FROM t SORT", "SORT"),
        ("SELECT * FROM t CLUSTER", "CLUSTER"),
        ("SELECT * FROM t WINDOW", "WINDOW"),
        ("SELECT * FROM t QUALIFY", "QUALIFY"),
        ("SELECT 1 FROM", "FROM"),
        ("SELECT a FROM t WHERE ORDER BY a", "WHERE"),
        ("SELECT a FROM t WHERE GROUP BY a", "WHERE"),
        ("SELECT a FROM t WHERE LIMIT 5", "WHERE"),
        ("SELECT * FROM (SELECT 1) WHERE", "WHERE"),
        ("SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE)", "WHERE"),
        ("SELECT a order FROM t", "ORDER"),
        ("SELECT a limit FROM t", "LIMIT"),
        ("SELECT a join FROM t", "JOIN"),
        ("SELECT a on, b FROM t", "ON"),
        ("SELECT count(*) group FROM t", "GROUP"),
        ("SELECT `a` where FROM t", "WHERE"),
        ("SELECT 1 UNION", "UNION"),
        ("EXPLAIN SELECT * FROM t WHERE", "WHERE"),
        # Spark's parser refuses these two itself, with a longer message.
        ("SELECT * FROM a JOIN b ON", "ON"),
        ("SELECT a FROM t ORDER BY a LIMIT", "LIMIT"),
    ],
)
def test_clause_keywords_spark_would_take_for_an_alias_are_refused(
    statement: str, word: str
) -> None:
    with pytest.raises(sqltext.IncompleteClause, match=rf"^incomplete {word} clause: ") as error:
        sqltext.check_clauses(statement)
    assert "\n" not in str(error.value)


# Every one of these parses in Spark 4 with the meaning written.
@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM silver.stop_executions WHERE date = '2024-12-27'",
        "SELECT status, COUNT(*) FROM t GROUP BY status HAVING COUNT(*) > 1 ORDER BY 2 DESC "
        "LIMIT 10 OFFSET 5",
        "SELECT 1 LIMIT 5",
        "SELECT a FROM t LIMIT ALL",
        "SELECT order, `limit`, t.group FROM t WHERE order = 1 AND limit > 2",
        "SELECT a FROM t WHERE where = 1",
        "SELECT a FROM t WHERE limit > 5 ORDER BY a",
        "SELECT a AS order, b AS where FROM t AS limit",
        "SELECT * FROM a LEFT JOIN b ON a.id = b.id JOIN c USING (id) CROSS JOIN d",
        "SELECT a, count(*) FILTER (WHERE b) FROM t GROUP BY ALL",
        "SELECT sum(x) OVER (PARTITION BY a ORDER BY b ROWS BETWEEN 1 PRECEDING AND "
        "CURRENT ROW) FROM t WINDOW w AS (ORDER BY b)",
        "SELECT extract(HOUR FROM ts), trim(BOTH 'x' FROM s) FROM t",
        "SELECT 1 UNION ALL SELECT 2 EXCEPT SELECT 3",
        "SELECT * FROM t WHERE -x > 1 ORDER BY (a) LIMIT (5)",
        "SELECT 'FROM t WHERE' AS s FROM t -- WHERE",
        "SHOW TABLES IN silver",
        "DESCRIBE silver.stop_executions",
    ],
)
def test_complete_clauses_and_names_spelled_like_keywords_pass(statement: str) -> None:
    sqltext.check_clauses(statement)


def test_check_statements_refuses_an_incomplete_clause_with_its_statement() -> None:
    statements = sqltext.parse_statements("SELECT 1; SELECT * FROM t WHERE")
    with pytest.raises(sqltext.IncompleteClause, match=r"^statement 2: incomplete WHERE clause"):
        sqltext.check_statements(statements, "table")


@pytest.mark.parametrize("name", ["seed_samples.sql", "gold_samples.sql"])
def test_the_shipped_queries_pass(name: str) -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "datalake" / "sql" / name).read_text()
    sqltext.check_statements(sqltext.parse_statements(text), "table")
