"""Run read-only SQL over the lake with a one-off spark-submit, recorded on a JobRun."""

import json
from pathlib import Path
from typing import TextIO

from datalake.conf import app_settings
from datalake.models import JobRun
from datalake.redaction import redact_text
from datalake.spark.runner import lake_uri, run_script, spark_dir
from spark_jobs.sqltext import QueryRefused, check_statements, parse_statements

__all__ = ["QueryFailed", "QueryRefused", "check_query", "run_query"]


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
) -> JobRun:
    """Run the statements of ``text`` and write their results, and only them, to ``out``.

    One JobRun per call (``source``: the file the text came from, for the record). Raise
    :class:`QueryRefused` before starting anything, or :class:`QueryFailed` with Spark's
    error (also recorded on the run) when a statement fails.
    """
    check_query(text, fmt)
    run = JobRun.objects.start(
        "lake_sql",
        layer=JobRun.Layer.OPS,
        parameters={"query": "" if source else text, "file": source, "format": fmt},
    )
    work = spark_dir()
    work.mkdir(parents=True, exist_ok=True)
    output, result_file = work / f"run-{run.pk}-output.txt", work / f"run-{run.pk}-result.json"
    query_file = work / f"run-{run.pk}-query.sql"
    query_file.write_text(text)
    try:
        outcome = run_script(
            "sql.py",
            ["--lake-uri", lake_uri(), "--file", str(query_file), "--format", fmt,
             "--output", str(output), "--result-file", str(result_file)],
            run=run,
            timeout=timeout,
        )  # fmt: skip
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        if output.exists():
            with output.open() as results:
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


def _last_lines(lines: list[str]) -> str:
    return "\n".join(lines[-8:]) or "spark-submit failed without output"


def read_query_file(path: str) -> str:
    """Return the text of the query file ``path``; raise :class:`QueryRefused` if unreadable."""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise QueryRefused(f"-f: cannot read {path}: {error}") from None
