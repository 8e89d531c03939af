"""Benchmark analysts' SQL: the SQL endpoint (warm) against one-off lake_sql and DuckDB.

    python -m benchmarks.sql_endpoint_bench --lake var/lake --url sc://localhost:15002
        [--runs 5] [--one-off-runs 1] [--token T]

Runs the seed document's sample and monitoring queries (``datalake/sql/seed_samples.sql``)
and :data:`ANALYST_QUERIES` over the same lake three ways, each query ``--runs`` times:

1. through a running ``lake_sql_server`` with the Spark Connect client, after one warm-up
   run of each query (the endpoint is long-lived: warm is its normal state);
2. as a one-off ``spark-submit spark_jobs/sql.py`` per query (today's ``lake_sql``),
   ``--one-off-runs`` times (each costs a JVM start);
3. with DuckDB over the same Parquet files (``hive_partitioning``), in one process.

Prints the median and p95 per query and path, the sums of the medians, then PASS/FAIL for
the goals: endpoint median under 1 s for every query, and its sum under 10x DuckDB's.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from spark_jobs.sqltext import parse_statements

ROOT = Path(__file__).resolve().parent.parent
ANALYST_QUERIES = [
    ("events per type", "SELECT event_type, COUNT(*) AS n FROM bronze.events GROUP BY 1 "
     "ORDER BY 2 DESC"),
    ("events last day", "SELECT COUNT(*) FROM bronze.events WHERE date = "
     "(SELECT MAX(date) FROM bronze.events)"),
    ("clients per symbol", "SELECT symbol, COUNT(DISTINCT client_id) AS clients "
     "FROM bronze.events GROUP BY symbol ORDER BY clients DESC"),
    ("executions per status", "SELECT status, COUNT(*) FROM silver.stop_executions "
     "GROUP BY status"),
    ("daily success rate", "SELECT date, AVG(CASE WHEN status = 'EXECUTED' THEN 1 ELSE 0 END) "
     "AS rate FROM silver.stop_executions GROUP BY date ORDER BY date DESC LIMIT 30"),
    ("top slippage clients", "SELECT client_id, AVG(slippage_pct) AS s FROM "
     "silver.stop_executions WHERE slippage_pct IS NOT NULL GROUP BY client_id "
     "ORDER BY s DESC LIMIT 10"),
    ("one client's week", "SELECT date, COUNT(*) FROM silver.stop_executions WHERE "
     "client_id = 1 GROUP BY date ORDER BY date DESC LIMIT 7"),
    ("retries", "SELECT retry_count, COUNT(*) FROM silver.stop_executions GROUP BY 1 "
     "ORDER BY 1"),
    ("breaches by symbol", "SELECT symbol, SUM(CASE WHEN slippage_breach THEN 1 ELSE 0 END) "
     "AS breaches FROM silver.stop_executions GROUP BY symbol ORDER BY breaches DESC"),
    ("latest executions", "SELECT execution_id, status, fill_price FROM "
     "silver.stop_executions ORDER BY triggered_at DESC LIMIT 20"),
]  # fmt: skip


def queries() -> list[tuple[str, str]]:
    """Return (title, SQL) of the seed's queries, then the analyst queries."""
    seed = parse_statements((ROOT / "datalake/sql/seed_samples.sql").read_text())
    return [(s.title, s.sql) for s in seed] + ANALYST_QUERIES


def timed(run: Callable[[], object], times: int) -> list[float]:
    out = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        out.append(time.perf_counter() - start)
    return out


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def duckdb_connection(lake: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for layer in ("bronze", "silver"):
        con.execute(f"CREATE SCHEMA {layer}")
        for dataset in sorted(p for p in (lake / layer).iterdir() if p.is_dir()):
            if dataset.name.startswith(("_", ".")):
                continue
            con.execute(
                f"CREATE VIEW {layer}.{dataset.name} AS SELECT * FROM read_parquet("
                f"'{dataset}/**/*.parquet', hive_partitioning = true)"
            )
    return con


def to_duckdb(sql: str) -> str:
    return sql.replace("PERCENTILE(", "quantile_cont(")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lake", required=True, type=Path)
    parser.add_argument("--url", default="sc://localhost:15002")
    parser.add_argument("--token", default=os.environ.get("SQL_SERVER_TOKEN"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--one-off-runs", type=int, default=1)
    args = parser.parse_args(argv)
    from pyspark.sql.connect.session import SparkSession

    url = f"{args.url}/;token={args.token}" if args.token else args.url
    spark = SparkSession.builder.remote(url).getOrCreate()
    con = duckdb_connection(args.lake.resolve())
    rows = []
    for title, sql in queries():
        spark.sql(sql).collect()  # warm-up
        endpoint = timed(lambda sql=sql: spark.sql(sql).collect(), args.runs)
        command = ["spark-submit", str(ROOT / "spark_jobs/sql.py"), "--lake-uri",
                   str(args.lake.resolve()), "--query", sql, "--output", os.devnull]  # fmt: skip
        one_off = timed(
            lambda command=command: subprocess.run(command, check=True, capture_output=True),
            args.one_off_runs,
        )
        duck = timed(lambda sql=sql: con.execute(to_duckdb(sql)).fetchall(), args.runs)
        rows.append((title, endpoint, one_off, duck))
    print(f"{'query':40} {'endpoint med/p95':>18} {'one-off med/p95':>18} {'duckdb med/p95':>18}")
    for title, *paths in rows:
        cells = [f"{statistics.median(v):8.3f}/{p95(v):8.3f}" for v in paths]
        print(f"{title[:40]:40} " + " ".join(f"{c:>18}" for c in cells))
    sums = [sum(statistics.median(r[i]) for r in rows) for i in (1, 2, 3)]
    print(f"{'sum of medians (s)':40} " + " ".join(f"{s:>18.3f}" for s in sums))
    slowest = max(statistics.median(r[1]) for r in rows)
    goals = [
        ("endpoint warm median under 1 s for every query", slowest < 1.0),
        ("endpoint under 10x DuckDB in aggregate", sums[0] < 10 * sums[2]),
    ]
    for name, ok in goals:
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    spark.stop()
    return 0 if all(ok for _, ok in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
