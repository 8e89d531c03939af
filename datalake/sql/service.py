"""Run read-only SQL over the lake with a one-off spark-submit, recorded on a JobRun."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from django.conf import settings

from datalake.conf import app_settings
from datalake.models import JobRun
from datalake.redaction import redact_text
from datalake.spark.runner import SparkOutcome, lake_uri, run_script, spark_dir
from datalake.sql.endpoint import client_url
from spark_jobs.sqltext import QueryRefused, check_statements, parse_statements

__all__ = ["QueryFailed", "QueryRefused", "check_query", "run_query"]


#: Exit code of spark_jobs/sql.py --remote when it cannot reach the endpoint.
ENDPOINT_UNREACHABLE = 3


class QueryFailed(Exception):
    """Spark ran the query and it failed or timed out; the message is Spark's error."""


def check_query(text: str, fmt: str) -> None:
    """Raise :class:`QueryRefused` unless ``text`` may run: statements that only read, and
    one statement for CSV or JSON. Nothing starts before this passes."""
    check_statements(parse_statements(text), fmt)


def run_query(
    text: str,
    fmt: str,
    out: TextIO,
    *,
    source: str = "",
    timeout: float | None = None,
    notice: Callable[[str], None] = lambda message: None,
) -> JobRun:
    """Run the statements of ``text`` and write their results, and only them, to ``out``.

    On the SQL endpoint when one is up (:func:`client_url`), else with a one-off
    spark-submit, which ``notice`` is told about. One JobRun per call (``source``: the
    file the text came from, for the record). Raise :class:`QueryRefused` before starting
    anything, or :class:`QueryFailed` with Spark's error (also recorded on the run) when a
    statement fails.
    """
    check_query(text, fmt)
    url = client_url()
    run = JobRun.objects.start(
        "lake_sql",
        layer=JobRun.Layer.OPS,
        parameters={"query": "" if source else text, "file": source, "format": fmt,
                    "endpoint": url or ""},
    )  # fmt: skip
    work = spark_dir()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    output, result_file = work / f"run-{run.pk}-output.txt", work / f"run-{run.pk}-result.json"
    query_file = work / f"run-{run.pk}-query.sql"
    query_file.write_text(text)
    args = ["--lake-uri", lake_uri(), "--file", str(query_file), "--format", fmt,
            "--output", str(output), "--result-file", str(result_file)]  # fmt: skip
    try:
        outcome = None
        if url:
            outcome = run_on_endpoint(url, args, run=run, timeout=timeout)
            if outcome.returncode == ENDPOINT_UNREACHABLE:
                notice(f"lake_sql: the SQL endpoint {url} did not answer; one-off spark-submit")
                outcome = None
        else:
            notice("lake_sql: no SQL endpoint is up (lake_sql_server); one-off spark-submit")
        if outcome is None:
            outcome = run_script("sql.py", args, run=run, timeout=timeout)
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        if output.exists():
            # newline="": a "\r\n" inside a value is data, not a line end to translate.
            with output.open(newline="") as results:
                for line in results:
                    out.write(line)
    finally:
        for path in (output, result_file, query_file):
            path.unlink(missing_ok=True)
    rows = int(result.get("rows", 0))
    if outcome.ok:
        run.succeed(rows_out=rows)
        return run
    if outcome.timed_out:
        error = f"timed out after {timeout:g} s and was killed"
    else:
        error = result.get("error") or _last_lines(outcome.log_tail)
    error = redact_text(error, app_settings.SECRET_VALUES)
    run.fail(f"{error}\n(log: {outcome.log_file})", rows_out=rows)
    raise QueryFailed(error)


def run_on_endpoint(
    url: str, args: list[str], *, run: JobRun, timeout: float | None
) -> SparkOutcome:
    """Run ``spark_jobs/sql.py --remote url`` (a Spark Connect client) with ``args``."""
    log_path = spark_dir() / "logs" / f"run-{run.pk}.log"
    run.log_file = str(log_path)
    run.save(update_fields=["log_file"])
    command = [sys.executable, str(Path(settings.BASE_DIR) / "spark_jobs" / "sql.py"),
               "--remote", url, *args]  # fmt: skip
    if timeout:
        command += ["--timeout", str(timeout)]
    env = dict(os.environ)
    if app_settings.SQL_SERVER_TOKEN:
        env["SPARK_CONNECT_AUTHENTICATE_TOKEN"] = app_settings.SQL_SERVER_TOKEN
    with log_path.open("w") as log:
        try:
            process = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, env=env,
                timeout=timeout + 30 if timeout else None, check=False,
            )  # fmt: skip
            returncode, timed_out = process.returncode, False
        except subprocess.TimeoutExpired:
            returncode, timed_out = -9, True
    tail = log_path.read_text().splitlines()[-40:]
    timed_out = timed_out or (bool(timeout) and any("OPERATION_CANCELED" in t for t in tail))
    return SparkOutcome(returncode, log_file=str(log_path), log_tail=tail, timed_out=timed_out)


def _last_lines(lines: list[str]) -> str:
    return "\n".join(lines[-8:]) or "spark-submit failed without output"


def read_query_file(path: str) -> str:
    """Return the text of the query file ``path``; raise :class:`QueryRefused` if unreadable."""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise QueryRefused(f"-f: cannot read {path}: {error}") from None
