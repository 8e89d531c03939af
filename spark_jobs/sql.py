"""Run Spark SQL over the lake, every dataset a table under its dotted name.

``spark-submit spark_jobs/sql.py --lake-uri URI (--query SQL | --file F) [--format F]
[--output FILE] [--result-file FILE]``

Every dataset directory under ``<lake>/bronze/`` and ``<lake>/silver/`` becomes a table
(``bronze.events``, ``silver.stop_executions``, ``silver.stop_executions_v2``...) with its
partition columns discovered, so the seed document's queries run as written. Each gold
training set is a table ``gold.training_sets.<name>`` spanning all its versions, with
``version`` and ``split`` columns, and the seed's ``robson_datalake.<layer>.<dataset>``
names work too (Spark's session catalog has one namespace level: :func:`resolve_lake_names`
rewrites these names, outside quotes and comments, here and for the SQL endpoint). Statements
are separated by ``;``. Queries run with ANSI mode off, as in the engines the seed's
queries were written for: a division by zero (a percentage over an empty day) is NULL,
not an error. Only read-only statements run (:mod:`spark_jobs.sqltext`), checked before
Spark starts and again by Spark's parser. Results go to ``--output`` or stdout
(``table``: a title line and aligned text per statement; ``csv`` and ``json`` lines: one
statement only); under spark-submit the driver's stderr is merged into its stdout, so
``lake_sql`` passes ``--output``. ``--result-file`` gets the outcome as JSON (status,
statements, rows, and Spark's error). Exit code 0 on success, 1 when a statement fails,
2 for bad arguments or a statement that would write.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import math
import re
import shutil
import sys
import threading
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):
    # Run as a script (spark-submit): import the package from the repository root.
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and str(Path(p).resolve()) != _here]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, TimestampNTZType

from spark_jobs.common.config import UsageError, lake_root
from spark_jobs.common.lake import LakeFS
from spark_jobs.sqltext import (
    FORMATS,
    NotReadOnly,
    QueryRefused,
    Statement,
    check_statements,
    parse_statements,
)

LAYERS = ("bronze", "silver")
#: Session settings for analysts' SQL (restored afterwards on a shared session).
#: No ``SELECT * FROM parquet.`/any/path```: analysts read the lake's tables only.
QUERY_SETTINGS = {"spark.sql.ansi.enabled": "false", "spark.sql.runSQLOnFiles": "false"}
ERROR_CHARS = 3000


# --- the catalog -------------------------------------------------------------------------


def register_lake_tables(spark: SparkSession, lake_uri: str) -> list[str]:
    """Register every bronze and silver dataset of the lake as a table; return their names.

    A table is an external Parquet table over the dataset directory that reads only
    ``*.parquet`` files (bronze partitions also hold ``_metadata/`` manifests) and knows
    its partitions, so ``WHERE date = ...`` prunes directories.
    """
    root = lake_root(lake_uri)
    fs = LakeFS(spark)
    registered = []
    for layer in LAYERS:
        names = fs.list_dirs(f"{root}/{layer}")
        if names:
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {layer}")
        for name in names:
            table = f"{layer}.`{name}`"
            location = f"{root}/{layer}/{name}".replace("'", "\\'")
            spark.sql(f"DROP TABLE IF EXISTS {table}")
            try:
                spark.sql(
                    f"CREATE TABLE {table} USING parquet "
                    f"OPTIONS (pathGlobFilter '*.parquet') LOCATION '{location}'"
                )
            except Exception as error:  # an empty or foreign directory is not a dataset
                print(f"skipped {layer}.{name}: {_first_line(error)}", file=sys.stderr)
                continue
            if _partitioned(spark, f"{layer}.{name}"):
                spark.sql(f"ALTER TABLE {table} RECOVER PARTITIONS")
            registered.append(f"{layer}.{name}")
    return registered


TRAINING_SETS = "gold/training_sets"
#: Where the training-set views live: Spark's global temporary views are shared by every
#: session of the driver (each Spark Connect client gets its own session).
VIEW_DATABASE = "global_temp"
_LAKE_NAME = re.compile(
    r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|--[^\n]*|/\*.*?\*/)"
    r"|(?<![\w.])(?:robson_datalake\.)?gold\.training_sets\.([a-z][a-z0-9_]*)\b"
    r"|(?<![\w.])robson_datalake\.(?=(?:bronze|silver|gold)\.)",
    re.S | re.I,
)


def training_set_view(name: str) -> str:
    """Return the view (``global_temp.<view>``) that stands for ``gold.training_sets.<name>``."""
    return f"{VIEW_DATABASE}.`gold__training_sets__{name.lower()}`"


def register_training_sets(spark: SparkSession, lake_uri: str) -> list[str]:
    """Register each gold training set as one view over all its versions and splits,
    with ``version`` and ``split`` columns; return the table names.

    The views are global temporary views, so every session of the driver sees them;
    calling again replaces them with the current versions and files.
    """
    root = lake_root(lake_uri)
    fs = LakeFS(spark)
    registered = []
    for name in fs.list_dirs(f"{root}/{TRAINING_SETS}"):
        parts = []
        for version in fs.list_dirs(f"{root}/{TRAINING_SETS}/{name}"):
            for split in ("train", "test"):
                path = f"{root}/{TRAINING_SETS}/{name}/{version}/{split}"
                if not fs.exists(path):
                    continue
                frame = (
                    spark.read.option("pathGlobFilter", "*.parquet")
                    .option("basePath", path)
                    .parquet(path)
                )
                parts.append(
                    frame.withColumn("version", F.lit(version)).withColumn("split", F.lit(split))
                )
        if parts:
            union = parts[0]
            for part in parts[1:]:
                union = union.unionByName(part, allowMissingColumns=True)
            union.createOrReplaceGlobalTempView(f"gold__training_sets__{name.lower()}")
            registered.append(f"gold.training_sets.{name}")
    return registered


def resolve_lake_names(statement: str) -> str:
    """Return ``statement`` with the lake's multi-part names resolved and its comments
    dropped (hints ``/*+ ... */`` kept): outside quotes and comments,
    ``[robson_datalake.]gold.training_sets.<name>`` becomes its view and
    ``robson_datalake.<layer>.<dataset>`` becomes ``<layer>.<dataset>``.

    Spark's session catalog has one namespace level, so these names cannot be tables.
    Comments go because the endpoint's settings guard refuses any text with the word
    ``SET`` not followed by a ``spark.sql.*`` key, and a comment may say "training set".
    """

    def replace(match: re.Match[str]) -> str:
        if match[1]:
            comment = match[1].startswith(("--", "/*")) and not match[1].startswith("/*+")
            return " " if comment else match[1]
        return training_set_view(match[2]) if match[2] else ""

    return _LAKE_NAME.sub(replace, statement)


def _partitioned(spark: SparkSession, table: str) -> bool:
    return any(column.isPartition for column in spark.catalog.listColumns(table))


# --- read-only, checked by Spark's own parser ----------------------------------------------

#: Parsed plans that run as commands yet only read.
_READ_ONLY_COMMANDS = ("Show", "Describe")


def check_plan_read_only(spark: SparkSession, statement: str) -> None:
    """Raise :class:`NotReadOnly` unless Spark parses ``statement`` into a plan that reads.

    The second line of defence behind :func:`check_read_only`: a plan is refused when one
    of its nodes is a command (other than SHOW/DESCRIBE) or an insert. Needs a classic
    (JVM) session; elsewhere only the text check applies.
    """
    try:
        jsession = spark._jsparkSession
    except Exception:  # a Spark Connect session has no JVM here
        return
    jvm = spark._jvm
    command = jvm.java.lang.Class.forName("org.apache.spark.sql.catalyst.plans.logical.Command")

    def visit(plan) -> None:
        name = plan.getClass().getSimpleName()
        if name == "ExplainCommand":
            visit(plan.logicalPlan())
            return
        if name.startswith(_READ_ONLY_COMMANDS):
            return
        if command.isInstance(plan) or name.startswith("Insert"):
            raise NotReadOnly(f"{name} is not allowed: lake_sql only reads")
        children = plan.children()
        for i in range(children.length()):
            visit(children.apply(i))

    visit(jsession.sessionState().sqlParser().parsePlan(statement))


# --- output ------------------------------------------------------------------------------


def plain(value: Any, dtype: DataType | None = None, for_json: bool = False) -> Any:
    """Return ``value`` in the documented output form.

    Decimals are exact strings, timestamps ISO 8601 in UTC with ``Z`` (a TIMESTAMP_NTZ
    column: without an offset), day-time intervals ISO 8601 durations (``P1DT2H3M4.5S``),
    binary base64, non-finite floats ``NaN``/``Infinity``/``-Infinity``. For JSON the
    rest stays native (numbers, booleans, null, arrays, objects); for text, booleans are
    ``true``/``false``, arrays and structs JSON text, and NULL is ``None`` (the writer
    decides how to show it).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return value if for_json else str(value).lower()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        if isinstance(dtype, TimestampNTZType):
            return value.isoformat()
        # pyspark hands a TIMESTAMP over as a naive datetime in the local time zone.
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Row):  # a struct: its field names are part of the value
        value = value.asDict(recursive=False)
    if isinstance(value, dict | list | tuple):
        nested = (
            {str(k): plain(v, for_json=True) for k, v in value.items()}
            if isinstance(value, dict)
            else [plain(v, for_json=True) for v in value]
        )
        return nested if for_json else json.dumps(nested, ensure_ascii=False)
    return value if for_json else str(value)


def iso_duration(value: timedelta) -> str:
    """Return ``value`` as an ISO 8601 duration: ``P{d}DT{h}H{m}M{s}S``, ``-`` if negative."""
    micros = abs(value) // timedelta(microseconds=1)
    days, micros = divmod(micros, 86_400_000_000)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    seconds = format(Decimal(micros) / 1_000_000, "f").rstrip("0").rstrip(".") or "0"
    sign = "-" if value < timedelta(0) else ""
    return f"{sign}P{days}DT{hours}H{minutes}M{seconds}S"


def write_result(frame: DataFrame, fmt: str, out: TextIO, title: str = "") -> int:
    """Write the rows of ``frame`` to ``out`` in ``fmt``; return how many there were."""
    fields = frame.schema.fields
    columns = [field.name for field in fields]
    rows = frame.collect()
    if fmt == "json":
        for row in rows:
            record = {
                f.name: plain(v, f.dataType, for_json=True)
                for f, v in zip(fields, row, strict=True)
            }
            out.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
        return len(rows)
    cells = [[plain(v, f.dataType) for f, v in zip(fields, row, strict=True)] for row in rows]
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in cells])
    else:
        out.write(f"-- {title}\n" if title else "")
        out.write(format_table(columns, [["NULL" if v is None else v for v in r] for r in cells]))
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n\n")
    return len(rows)


def format_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Return ``rows`` as an aligned text table under a header line."""
    cells = [[str(c) for c in columns], *[[str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in cells
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def run_statements(
    spark: SparkSession, statements: Sequence[Statement], fmt: str, out: TextIO
) -> int:
    """Check then run each statement, writing its result to ``out``; return the rows."""
    for statement in statements:
        check_plan_read_only(spark, resolve_lake_names(statement.sql))
    rows = 0
    for statement in statements:
        frame = spark.sql(resolve_lake_names(statement.sql))
        rows += write_result(frame, fmt, out, statement.title)
        out.flush()
    return rows


# --- entry point -------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spark_jobs/sql.py", description=__doc__.split("\n")[0])
    parser.add_argument("--lake-uri", required=True, help="lake root: directory or s3a://...")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--query", help="SQL statement(s), separated by ;")
    source.add_argument("--file", help="file of SQL statements separated by ;")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.add_argument("--output", help="write the results to this file instead of stdout")
    parser.add_argument("--result-file", help="write the outcome here as JSON")
    parser.add_argument("--remote", help="run on the SQL endpoint at this sc:// URL")
    parser.add_argument("--timeout", type=float, help="with --remote: interrupt after S s")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the statements given on the command line against the lake; return the exit code."""
    result: dict[str, Any] = {"status": "refused", "statements": 0, "rows": 0, "error": ""}
    result_file = None
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        result_file = args.result_file
        text = Path(args.file).read_text() if args.file else args.query
        statements = parse_statements(text)
        check_statements(statements, args.format)
        lake_root(args.lake_uri)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except (OSError, UsageError, QueryRefused) as error:
        print(f"error: {error}", file=sys.stderr)
        _write_result_file(result_file, {**result, "error": str(error)})
        return 2

    if args.remote:
        return _run_remote(args, statements, result, result_file)

    from spark_jobs.common.session import get_session

    result["statements"] = len(statements)
    spark, created = get_session("robson lake_sql")
    print(f"APP_ID={spark.sparkContext.applicationId}", file=sys.stderr, flush=True)
    warehouse = spark.conf.get("spark.sql.warehouse.dir")
    previous = {key: spark.conf.get(key, None) for key in QUERY_SETTINGS}
    try:
        for key, value in QUERY_SETTINGS.items():
            spark.conf.set(key, value)
        tables = register_lake_tables(spark, args.lake_uri)
        tables += register_training_sets(spark, args.lake_uri)
        print(f"tables: {', '.join(tables) or '(none)'}", file=sys.stderr)
        return _run_and_record(spark, args, statements, result)
    finally:
        _write_result_file(result_file, result)
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
        if created:
            spark.stop()
            if warehouse and "spark-warehouse-" in warehouse:
                shutil.rmtree(warehouse.removeprefix("file:"), ignore_errors=True)


def _run_remote(
    args: argparse.Namespace,
    statements: Sequence[Statement],
    result: dict[str, Any],
    result_file: str | None,
) -> int:
    """Run the statements on the SQL endpoint at ``args.remote`` (Spark Connect)."""
    result["statements"] = len(statements)
    try:
        spark = SparkSession.builder.remote(args.remote).getOrCreate()
        for key, value in QUERY_SETTINGS.items():
            spark.conf.set(key, value)
    except Exception as error:
        result.update(status="failed", error=f"endpoint {args.remote}: {_first_line(error)}")
        print(f"error: {result['error']}", file=sys.stderr)
        _write_result_file(result_file, result)
        return 3
    timer = None
    if args.timeout:
        timer = threading.Timer(args.timeout, spark.interruptAll)
        timer.daemon = True
        timer.start()
    try:
        return _run_and_record(spark, args, statements, result)
    finally:
        if timer is not None:
            timer.cancel()
        _write_result_file(result_file, result)
        spark.stop()


def _run_and_record(
    spark: SparkSession,
    args: argparse.Namespace,
    statements: Sequence[Statement],
    result: dict[str, Any],
) -> int:
    try:
        with ExitStack() as stack:
            out = sys.stdout
            if args.output:
                out = stack.enter_context(Path(args.output).open("w", newline=""))
            result["rows"] = run_statements(spark, statements, args.format, out)
        result["status"] = "succeeded"
        return 0
    except NotReadOnly as error:
        result["error"] = str(error)
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        result.update(status="failed", error=str(error).strip()[:ERROR_CHARS])
        print(f"error: {result['error']}", file=sys.stderr)
        return 1


def _write_result_file(path: str | None, result: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(result))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
