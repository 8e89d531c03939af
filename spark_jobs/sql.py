"""Run Spark SQL over the lake, every dataset a table under its dotted name.

``spark-submit spark_jobs/sql.py --lake-uri URI (--query SQL | --file F) [--format F]``

Every dataset directory under ``<lake>/bronze/`` and ``<lake>/silver/`` becomes a table
(``bronze.events``, ``silver.stop_executions``, ``silver.stop_executions_v2``...) with its
partition columns discovered, so the seed document's queries run as written. Each gold
training set is a table ``gold.training_sets.<name>`` spanning all its versions, with
``version`` and ``split`` columns (Spark's session catalog has no three-part names: the
name is rewritten to a temporary view, outside quotes and comments). Statements
are separated by ``;``. Queries run with ANSI mode off, as in the engines the seed's
queries were written for: a division by zero (a percentage over an empty day) is NULL,
not an error. Results go to stdout (``table``: aligned text, ``csv``, or
``json``: one object per line); logs and errors go to stderr. Exit code 0 on success,
1 when a statement fails, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):
    # Run as a script (spark-submit): import the package from the repository root.
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and str(Path(p).resolve()) != _here]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import re

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.common.config import UsageError, lake_root
from spark_jobs.common.lake import LakeFS

LAYERS = ("bronze", "silver")
#: Session settings for analysts' SQL (restored afterwards on a shared session).
QUERY_SETTINGS = {"spark.sql.ansi.enabled": "false"}
FORMATS = ("table", "csv", "json")
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
_THREE_PART = re.compile(
    r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|--[^\n]*|/\*.*?\*/)"
    r"|\bgold\.training_sets\.([a-z][a-z0-9_]*)\b",
    re.S,
)


def training_set_view(name: str) -> str:
    """Return the temporary view that stands for ``gold.training_sets.<name>``."""
    return f"gold__training_sets__{name}"


def register_training_sets(spark: SparkSession, lake_uri: str) -> list[str]:
    """Register each gold training set as one view over all its versions and splits,
    with ``version`` and ``split`` columns; return the table names."""
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
            union.createOrReplaceTempView(training_set_view(name))
            registered.append(f"gold.training_sets.{name}")
    return registered


def resolve_training_sets(statement: str) -> str:
    """Return ``statement`` with ``gold.training_sets.<name>`` (outside quotes and
    comments) replaced by its view."""

    def replace(match: re.Match[str]) -> str:
        return match[1] if match[1] else f"`{training_set_view(match[2])}`"

    return _THREE_PART.sub(replace, statement)


def _partitioned(spark: SparkSession, table: str) -> bool:
    return any(column.isPartition for column in spark.catalog.listColumns(table))


# --- statements --------------------------------------------------------------------------


def split_statements(text: str) -> list[str]:
    """Return the statements of ``text`` split on ``;``, ignoring ones inside quotes/comments.

    Statements holding nothing but comments and blanks are dropped.
    """
    statements, current = [], []
    has_code = False
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "'\"`":
            end = _closing_quote(text, i)
            current.append(text[i:end])
            has_code, i = True, end
        elif text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            current.append(text[i:end])
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            current.append(text[i:end])
            i = end
        elif char == ";":
            if has_code:
                statements.append("".join(current).strip())
            current, has_code = [], False
            i += 1
        else:
            current.append(char)
            has_code = has_code or not char.isspace()
            i += 1
    if has_code:
        statements.append("".join(current).strip())
    return statements


def _closing_quote(text: str, start: int) -> int:
    """Return the index just past the quoted literal that opens at ``start``."""
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "`":
            i += 2
            continue
        if text[i] == quote:
            if text.startswith(quote * 2, i):  # '' inside '...' is an escaped quote
                i += 2
                continue
            return i + 1
        i += 1
    return len(text)


# --- output ------------------------------------------------------------------------------


def plain(value: Any, for_json: bool = False) -> Any:
    """Return ``value`` printable: exact decimals, ISO dates, intervals as text."""
    if isinstance(value, Decimal):
        if for_json and Decimal(repr(float(value))) == value:
            return float(value)  # a JSON number only when that is exact
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v, for_json) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, for_json) for v in value]
    if value is None:
        return None if for_json else "NULL"
    return value if for_json else str(value)


def write_result(frame: DataFrame, fmt: str, out: TextIO) -> int:
    """Write the rows of ``frame`` to ``out`` in ``fmt``; return how many there were."""
    columns = frame.columns
    rows = frame.collect()
    if fmt == "json":
        for row in rows:
            record = {c: plain(v, for_json=True) for c, v in row.asDict(recursive=True).items()}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else plain(v) for v in row] for row in rows])
    else:
        out.write(format_table(columns, [[plain(v) for v in row] for row in rows]))
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


def run_statements(spark: SparkSession, statements: Sequence[str], fmt: str, out: TextIO) -> None:
    """Run each statement and write its result to ``out``."""
    for statement in statements:
        write_result(spark.sql(resolve_training_sets(statement)), fmt, out)
        out.flush()


# --- entry point -------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spark_jobs/sql.py", description=__doc__.split("\n")[0])
    parser.add_argument("--lake-uri", required=True, help="lake root: directory or s3a://...")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--query", help="SQL statement(s), separated by ;")
    source.add_argument("--file", help="file of SQL statements separated by ;")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the statements given on the command line against the lake; return the exit code."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        text = Path(args.file).read_text() if args.file else args.query
        statements = split_statements(text)
        if not statements:
            raise UsageError("no SQL statement given")
        lake_root(args.lake_uri)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except (OSError, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from spark_jobs.common.session import get_session

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
        run_statements(spark, statements, args.format, sys.stdout)
        return 0
    except Exception as error:
        print(f"error: {str(error).strip()[:ERROR_CHARS]}", file=sys.stderr)
        return 1
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
        if created:
            spark.stop()
            if warehouse and "spark-warehouse-" in warehouse:
                shutil.rmtree(warehouse.removeprefix("file:"), ignore_errors=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
