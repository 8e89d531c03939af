"""lake_sql's bad input: one clear line and a non-zero exit, before Spark or a JobRun."""

import io
import json
import os

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from datalake.models import JobRun
from datalake.sql.endpoint import prepare_start

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["INSERT INTO bronze.trades SELECT * FROM bronze.trades"], "INSERT is not allowed"),
        (["DROP TABLE bronze.trades"], "DROP is not allowed"),
        (["SELECT 1; DROP TABLE x"], "statement 2: DROP is not allowed"),
        (["SELECT '1;' -- ;\n; /* ; */ CACHE TABLE bronze.events"], "statement 2: CACHE"),
        (["WITH a AS (SELECT 1) INSERT INTO bronze.trades SELECT * FROM a"], "INSERT is not"),
        (["EXPLAIN INSERT INTO bronze.trades SELECT 1"], "INSERT is not allowed"),
        (["SET spark.sql.ansi.enabled=true"], "SET is not allowed"),
        (["ADD JAR /tmp/x.jar"], "ADD is not allowed"),
        (["CREATE TEMP VIEW v AS SELECT 1"], "CREATE is not allowed"),
        (["SELECT * FROM silver.stop_executions WHERE"], "incomplete WHERE clause: Spark would"),
        (["SELECT 1; SELECT a order FROM t"], "statement 2: incomplete ORDER clause"),
        (["SELECT 1; SELECT 2", "--format", "csv"], "--format csv takes one statement, got 2"),
        (["SELECT 1; SELECT 2", "--format", "json"], "--format json takes one statement"),
        (["-- nothing but a comment"], "no SQL statement given"),
        (["-f", "/nonexistent/q.sql"], "-f: cannot read /nonexistent/q.sql"),
        (["SELECT 1", "--timeout", "0"], "--timeout must be a positive number"),
        ([], "give either a query or -f FILE"),
    ],
)
def test_bad_input_is_refused_before_spark(args: list[str], message: str, settings) -> None:
    settings.DATALAKE_SPARK_SUBMIT = "/nonexistent/spark-submit"  # would fail if reached
    with pytest.raises(CommandError) as refused:
        call_command("lake_sql", *args, stdout=io.StringIO())
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not JobRun.objects.exists()


def test_a_directory_as_query_file_is_refused(tmp_path) -> None:
    with pytest.raises(CommandError, match=r"^-f: cannot read .*Is a directory"):
        call_command("lake_sql", "-f", str(tmp_path), stdout=io.StringIO())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"DATALAKE_SQL_SERVER_HOST": "0.0.0.0"},
            "listens beyond this machine: set SQL_SERVER_TOKEN",
        ),
        ({"DATALAKE_SQL_SERVER_PORT": 0}, "SQL_SERVER_PORT=0 is not a port"),
    ],
)
def test_lake_sql_server_refuses_bad_settings(overrides: dict, message: str, settings) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)
    with pytest.raises(CommandError, match=message):
        call_command("lake_sql_server")


def test_lake_sql_server_refuses_to_start_twice(settings, tmp_path) -> None:
    settings.DATALAKE_WORK_DIR = str(tmp_path)
    state = tmp_path / "spark" / "sql-server.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"status": "up", "pid": os.getpid()}))  # a live process
    with pytest.raises(CommandError, match=rf"already runs here \(pid {os.getpid()}\)"):
        call_command("lake_sql_server")
    state.write_text(json.dumps({"status": "up", "pid": 2**22 + 1}))  # gone: a stale file
    prepare_start()
    assert not state.exists()
