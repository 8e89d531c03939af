"""Benchmark the bronze export of stop events on PostgreSQL and print the figures.

    python -m benchmarks.bronze_export_bench [--events N] [--skip-5m] [--keep-db] [--repeat R]

Creates the database `bench_bronze` on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/test), migrates it, fills `stop_events` with
server-side SQL, then measures, each in a fresh subprocess so that its peak RSS is its
own:

1. product: `export_dataset("events")` of every row into a fresh local lake (default
   batch size);
2. floor: COPY ... TO STDOUT (FORMAT csv) streamed through pyarrow's CSV reader with
   the exact bronze schema into one zstd Parquet file;
3. pandas: `pandas.read_sql(chunksize=100_000)` and `to_parquet` per chunk;
4. memory flatness: peak RSS of the export of 500,000 and of 5,000,000 events;
5. incremental: the export of 10,000 new rows once everything before is exported, and
   the plan of the exporter's cursor query.

Measurements 1-3 run `--repeat` times (default 3) and keep the median time and the highest
peak RSS. Prints a table, then PASS/FAIL per target; exits 1 if a target is missed.
"""

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pyarrow as pa

from datalake.bronze.schemas import EVENTS

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
BENCH_DATABASE = "bench_bronze"

SPAN_DAYS = 8
START = "2025-01-06 00:00:00+00"
INCREMENT = 10_000
FLAT_SMALL = 500_000
FLAT_LARGE = 5_000_000
PANDAS_CHUNK = 100_000

FLOOR_RATIO_MIN = 0.60
PANDAS_RATIO_MIN = 4.0
PEAK_MB_MAX = 400.0
FLATNESS_MAX = 0.10
INCREMENTAL_SECONDS_MAX = 1.0

COLUMNS = [name for name, _ in EVENTS.columns]

# -- Filling the source table -------------------------------------------------------------

SEED_SQL = [
    """
    INSERT INTO clients_client (name, email, is_active, created_at)
    SELECT 'bench-client-' || c, 'client' || c || '@example.com', true,
           %(start)s::timestamptz - interval '30 days'
    FROM generate_series(1, 3) AS c
    """,
    """
    INSERT INTO api_strategy (client_id, name, description, config, is_active, created_at)
    SELECT id, 'rescue-stop', 'Bench strategy', '{"risk_pct": 1}', true, created_at
    FROM clients_client
    """,
    """
    INSERT INTO api_operation (
        client_id, strategy_id, symbol, side, status, stop_price, entry_price,
        entry_quantity, opened_at, created_at
    )
    SELECT s.client_id, s.id, m.symbol, m.side, 'ACTIVE', m.stop, m.entry, m.quantity,
           s.created_at, s.created_at
    FROM api_strategy AS s
    CROSS JOIN (VALUES
        ('BTCUSDC', 'BUY', 94250.50000000, 95812.12000000, 0.01250000),
        ('ETHUSDC', 'BUY', 3312.40000000, 3390.12000000, 0.85000000),
        ('SOLUSDC', 'SELL', 198.35000000, 189.20000000, 12.50000000),
        ('BNBUSDC', 'BUY', 640.10000000, 655.30000000, 2.00000000)
    ) AS m (symbol, side, stop, entry, quantity)
    """,
]

# Events come in executions of three (triggered, submitted, executed) that share an
# operation and an execution token; one event in twenty is a failure-type event instead.
FILL_SQL = """
INSERT INTO stop_events (
    event_id, event_seq, occurred_at, operation_id, client_id, symbol, event_type,
    trigger_price, stop_price, quantity, side, execution_token, payload_json,
    exchange_order_id, fill_price, slippage_pct, source, error_message, retry_count
)
WITH ops AS (
    SELECT row_number() OVER (ORDER BY id) - 1 AS k, id, client_id, symbol, side,
           stop_price, entry_quantity
    FROM api_operation
), g AS (
    SELECT seq, seq / 3 AS execution, random() AS r,
           CASE WHEN random() < 0.05
                THEN (ARRAY['FAILED', 'BLOCKED', 'STALE_PRICE', 'KILL_SWITCH',
                            'SLIPPAGE_BREACH', 'CIRCUIT_BREAKER'])[1 + seq %% 6]
                ELSE (ARRAY['STOP_TRIGGERED', 'EXECUTION_SUBMITTED', 'EXECUTED'])[1 + seq %% 3]
           END AS event_type
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS seq
)
SELECT
    gen_random_uuid(),
    g.seq,
    %(start)s::timestamptz + g.seq * %(step_us)s::bigint * interval '1 microsecond',
    ops.id,
    ops.client_id,
    ops.symbol,
    g.event_type,
    CASE WHEN g.event_type NOT IN ('KILL_SWITCH', 'CIRCUIT_BREAKER')
         THEN round(ops.stop_price * (0.997 + 0.002 * g.r)::numeric, 8) END,
    ops.stop_price,
    ops.entry_quantity,
    CASE WHEN ops.side = 'BUY' THEN 'SELL' ELSE 'BUY' END,
    md5(g.execution::text),
    jsonb_build_object(
        'execution', g.execution, 'attempt', g.seq %% 3,
        'latency_ms', (g.r * 250)::int, 'reason', lower(g.event_type)
    ),
    CASE WHEN g.event_type = 'EXECUTED' THEN (4100000000 + g.seq)::text END,
    CASE WHEN g.event_type = 'EXECUTED'
         THEN round(ops.stop_price * (0.995 + 0.004 * g.r)::numeric, 8) END,
    CASE WHEN g.event_type = 'EXECUTED' THEN round((g.r * 0.5)::numeric, 4) END,
    CASE WHEN g.r < 0.9 THEN 'ws' WHEN g.r < 0.99 THEN 'cron' ELSE 'manual' END,
    CASE WHEN g.event_type = 'FAILED'
         THEN 'Binance -2010: Account has insufficient balance for requested action.' END,
    CASE WHEN g.event_type = 'FAILED' THEN (g.seq %% 4)::int ELSE 0 END
FROM g
JOIN ops ON ops.k = g.execution %% (SELECT count(*) FROM ops)
"""


def database_url(base: str, name: str) -> str:
    """Return `base` pointing at database `name` on the same server."""
    return urlsplit(base)._replace(path=f"/{name}").geturl()


def recreate_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def child_env(url: str, work: Path) -> dict[str, str]:
    """Return the environment of a child: its own lake, work and var directories."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "DATALAKE_VAR_DIR": str(work / "var"),
        "DATALAKE_URI": str(work / "lake"),
        "DATALAKE_WORK_DIR": str(work / "work"),
        "DATALAKE_LOG_LEVEL": "WARNING",
    }


def migrate(url: str, work: Path) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env=child_env(url, work),
        check=True,
    )


def seed_operations(url: str) -> None:
    """Create the clients, strategies and operations the events refer to."""
    with psycopg.connect(url) as conn:
        for sql in SEED_SQL:
            conn.execute(sql, {"start": START})


def fill_events(url: str, first: int, count: int, step_us: int) -> None:
    """Insert events with event_seq first..first+count-1, `step_us` apart in time."""
    with psycopg.connect(url) as conn:
        conn.execute(
            FILL_SQL,
            {"first": first, "last": first + count - 1, "start": START, "step_us": step_us},
        )
        # Keep the sequence the INSERT default draws from ahead of the explicit values.
        conn.execute("SELECT setval('stop_events_event_seq_seq', max(event_seq)) FROM stop_events")


def step_us(count: int) -> int:
    """Return the time between events that spreads `count` of them over SPAN_DAYS."""
    return SPAN_DAYS * 86_400_000_000 // count


def load_events(url: str, count: int) -> None:
    """Fill `stop_events` with `count` events, VACUUM ANALYZE, and CHECKPOINT."""
    started = time.perf_counter()
    fill_events(url, 1, count, step_us(count))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE stop_events")
        # Flush the load's dirty pages now rather than during a measurement.
        conn.execute("CHECKPOINT")
    say(f"filled {count:,} events in {time.perf_counter() - started:.1f} s")


def reset_export_state(url: str) -> None:
    """Forget every export (cursor, batches, runs), keeping the source rows."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "TRUNCATE datalake_exportbatch, datalake_exportcursor, datalake_jobrun CASCADE"
        )


def reset_events(url: str) -> None:
    """Empty the source table and the exporter's state, keeping the operations."""
    reset_export_state(url)
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE stop_events")


def checkpoint(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- Child side: one measurement per process ----------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Stopwatch:
    """Wall and CPU time (all threads of this process) since start, and the RSS at start."""

    def __init__(self) -> None:
        self.rss_mb = rss_mb()
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def figures(self) -> dict[str, float]:
        return {
            "seconds": time.perf_counter() - self.wall,
            "cpu_seconds": time.process_time() - self.cpu,
            "before_mb": self.rss_mb,
        }


def setup_django() -> None:
    import django

    django.setup()


def child_product(args: argparse.Namespace) -> dict[str, Any]:
    """Export every event with the product's exporter."""
    setup_django()
    from datalake.bronze.exporter import export_dataset
    from datalake.conf import app_settings

    watch = Stopwatch()
    result = export_dataset("events")
    figures = watch.figures()
    if result.status != "SUCCEEDED" or result.rejected:
        raise RuntimeError(f"the export did not succeed cleanly: {result}")
    return {
        "rows": result.rows,
        **figures,
        "files": result.files,
        "bytes": result.bytes,
        "batch_size": app_settings.EXPORT_BATCH_SIZE,
    }


def child_incremental(args: argparse.Namespace) -> dict[str, Any]:
    """Export the rows new since the last export, first call then a warm second call.

    The first call pays the process's one-off costs (database connection, lazy imports),
    as a `manage.py export_bronze` from cron would; the second, after INCREMENT more
    rows, is what a long-lived Celery worker pays.
    """
    setup_django()
    from django.db import connection
    from django.db.models import Q

    from datalake.bronze.exporter import export_dataset
    from datalake.bronze.source import _select, get_source
    from datalake.conf import app_settings

    watch = Stopwatch()
    first = export_dataset("events")
    figures = watch.figures()

    watermark = first.cursor_end
    fill_events(os.environ["DATABASE_URL"], watermark + 1, INCREMENT, args.step_us)
    watch = Stopwatch()
    second = export_dataset("events")
    warm = watch.figures()

    # The query the exporter wraps in COPY to read the warm call's new rows.
    query = _select(
        get_source("events"), Q(event_seq__gt=watermark), app_settings.EXPORT_BATCH_SIZE
    )
    plan = query.explain(analyze=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'stop_events' AND indexdef LIKE %s",
            ["%(event_seq)"],
        )
        seq_indexes = [name for (name,) in cursor.fetchall()]
    return {
        "rows": first.rows,
        **figures,
        "warm_rows": second.rows,
        "warm_seconds": warm["seconds"],
        "warm_cpu_seconds": warm["cpu_seconds"],
        "watermark": watermark,
        "plan": plan,
        "uses_index": any(name in plan for name in seq_indexes),
    }


def copy_sql() -> str:
    """Return the COPY of every event, in cursor order, timestamps as epoch microseconds."""
    select = ", ".join(
        f"(EXTRACT(EPOCH FROM {name}) * 1000000)::bigint" if pa.types.is_timestamp(dtype) else name
        for name, dtype in EVENTS.columns
    )
    return f"COPY (SELECT {select} FROM stop_events ORDER BY event_seq) TO STDOUT (FORMAT csv)"


class CopyReader(io.RawIOBase):
    """A read-only file over the rows of a psycopg COPY TO STDOUT."""

    def __init__(self, rows: Iterator[memoryview]) -> None:
        self._rows = rows
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # Fill the whole buffer: libpq hands over one row at a time.
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if not self._pending:
                row = next(self._rows, None)
                if row is None:
                    break
                self._pending = memoryview(row)
            size = min(len(view) - filled, len(self._pending))
            view[filled : filled + size] = self._pending[:size]
            self._pending = self._pending[size:]
            filled += size
        return filled


def child_floor(args: argparse.Namespace) -> dict[str, Any]:
    """Stream COPY CSV through pyarrow's CSV reader into one Parquet file."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    schema = EVENTS.schema
    convert = pacsv.ConvertOptions(
        column_types={
            name: pa.int64() if pa.types.is_timestamp(dtype) else dtype
            for name, dtype in EVENTS.columns
        },
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        null_values=[""],
    )
    path = Path(os.environ["DATALAKE_URI"]) / "events.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    watch = Stopwatch()
    with (
        psycopg.connect(os.environ["DATABASE_URL"]) as conn,
        conn.cursor() as cursor,
        cursor.copy(copy_sql()) as copy,
        pq.ParquetWriter(path, schema, compression="zstd") as writer,
    ):
        reader = pacsv.open_csv(
            io.BufferedReader(CopyReader(iter(copy)), buffer_size=1 << 20),
            read_options=pacsv.ReadOptions(column_names=COLUMNS, block_size=8 << 20),
            convert_options=convert,
        )
        for batch in reader:
            columns = [batch.column(i).cast(field.type) for i, field in enumerate(schema)]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
            rows += batch.num_rows
    return {"rows": rows, **watch.figures(), "bytes": path.stat().st_size}


def child_pandas(args: argparse.Namespace) -> dict[str, Any]:
    """Read with pandas.read_sql in chunks and write one Parquet file per chunk."""
    import warnings

    import pandas as pd

    out = Path(os.environ["DATALAKE_URI"])
    out.mkdir(parents=True, exist_ok=True)
    sql = f"SELECT {', '.join(COLUMNS)} FROM stop_events ORDER BY event_seq"
    rows = 0
    watch = Stopwatch()
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn, warnings.catch_warnings():
        # pandas warns that it tests only SQLAlchemy and sqlite3 connections.
        warnings.simplefilter("ignore", UserWarning)
        for number, chunk in enumerate(pd.read_sql(sql, conn, chunksize=PANDAS_CHUNK)):
            chunk.to_parquet(out / f"part-{number:05d}.parquet", compression="zstd", index=False)
            rows += len(chunk)
    return {"rows": rows, **watch.figures()}


CHILDREN: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "product": child_product,
    "incremental": child_incremental,
    "floor": child_floor,
    "pandas": child_pandas,
}


def run_child(args: argparse.Namespace) -> int:
    """Run one measurement and print its figures as JSON, peak RSS of this process included."""
    data = CHILDREN[args.child](args)
    data["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(data))
    return 0


# -- Parent side ---------------------------------------------------------------------------


@dataclass
class Measurement:
    """The median of a measurement's runs, each in its own process."""

    label: str
    rows: int
    seconds: float
    slowest: float
    fastest: float
    cpu_seconds: float  # of the median run, this process only (not the server's)
    peak_mb: float  # the highest of the runs
    before_mb: float
    extra: dict[str, Any]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def run_once(
    kind: str, label: str, url: str, work: Path, extra_args: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Run measurement `kind` in a fresh Python process and return what it reports."""
    checkpoint(url)
    work.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bronze_export_bench", "--child", kind, *extra_args],
        cwd=ROOT,
        env=child_env(url, work),
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    data = json.loads(done.stdout.strip().splitlines()[-1])
    say(f"{label}: {data['rows']:,} rows, {data['seconds']:.2f} s, peak {data['peak_mb']:.0f} MB")
    return data


def summarize(label: str, runs: list[dict[str, Any]]) -> Measurement:
    """Return the run of median time, with the spread and the highest peak RSS of all."""
    runs = sorted(runs, key=lambda run: run["seconds"])
    median = dict(runs[(len(runs) - 1) // 2])
    return Measurement(
        label=label,
        rows=median.pop("rows"),
        seconds=median.pop("seconds"),
        slowest=runs[-1]["seconds"],
        fastest=runs[0]["seconds"],
        cpu_seconds=median.pop("cpu_seconds"),
        peak_mb=max(run["peak_mb"] for run in runs),
        before_mb=median.pop("before_mb"),
        extra=median,
    )


@dataclass
class Results:
    events: int
    repeat: int
    server: str
    load: tuple[float, float]  # 1-minute load average before and after
    product: Measurement
    floor: Measurement
    pandas: Measurement
    incremental: Measurement
    flat: list[Measurement]


def run_all(args: argparse.Namespace, url: str, tmp: Path) -> Results:
    load_before = os.getloadavg()[0]
    migrate(url, tmp / "migrate")
    seed_operations(url)
    load_events(url, args.events)
    n = f"{args.events:,}"
    labels = {
        "product": f"1 product: export_dataset, {n}",
        "floor": "2 floor: COPY csv -> pyarrow -> Parquet",
        "pandas": "3 pandas: read_sql + to_parquet",
    }
    # Rounds of the three, so that a change in the machine's load hits each alike.
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in labels}
    for number in range(args.repeat):
        reset_export_state(url)
        for kind, label in labels.items():
            runs[kind].append(run_once(kind, label, url, tmp / kind / f"run-{number}"))
    product, floor, pandas = (summarize(labels[kind], runs[kind]) for kind in labels)

    # The exporter's state and lake are those of the last product run: all rows exported.
    fill_events(url, args.events + 1, INCREMENT, step_us(args.events))
    label = f"5 incremental: +{INCREMENT:,} after {n}"
    incremental = summarize(
        label,
        [
            run_once(
                "incremental",
                label,
                url,
                tmp / "product" / f"run-{args.repeat - 1}",
                ("--step-us", str(step_us(args.events))),
            )
        ],
    )

    with psycopg.connect(url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]

    flat = []
    for count in (FLAT_SMALL, *(() if args.skip_5m else (FLAT_LARGE,))):
        reset_events(url)
        load_events(url, count)
        label = f"4 memory: export of {count:,}"
        flat.append(summarize(label, [run_once("product", label, url, tmp / f"flat-{count}")]))
    load = (load_before, os.getloadavg()[0])
    return Results(
        args.events, args.repeat, server, load, product, floor, pandas, incremental, flat
    )


def row(m: Measurement, rows: int, seconds: float, cpu: float, spread: str) -> str:
    return (
        f"{m.label:<42} {rows:>10,} {seconds:>8.2f} {spread:>12} {rows / seconds:>10,.0f}"
        f" {cpu:>6.2f} {m.before_mb:>7.0f} {m.peak_mb:>7.0f}"
    )


def report(results: Results) -> bool:
    """Print the figures and the targets; return whether every target is met."""
    product, incremental = results.product, results.incremental
    print(
        f"\nbronze export benchmark: PostgreSQL {results.server}, {os.cpu_count()} CPUs,"
        f" pyarrow {pa.__version__}, export batch size {product.extra['batch_size']:,};"
        f" median of {results.repeat} run(s) for 1-3; load average {results.load[0]:.1f}"
        f" before, {results.load[1]:.1f} after"
    )
    header = (
        f"{'measurement':<42} {'rows':>10} {'seconds':>8} {'range':>12} {'rows/s':>10}"
        f" {'CPU s':>6} {'RSS MB':>7} {'peak MB':>7}"
    )
    print(f"\n{header}\n{'-' * len(header)}")
    for m in (product, results.floor, results.pandas, *results.flat):
        spread = f"{m.fastest:.2f}-{m.slowest:.2f}" if m.fastest != m.slowest else ""
        print(row(m, m.rows, m.seconds, m.cpu_seconds, spread))
    inc = incremental
    print(row(inc, inc.rows, inc.seconds, inc.cpu_seconds, "first call"))
    warm_rows, warm_seconds = inc.extra["warm_rows"], inc.extra["warm_seconds"]
    print(row(inc, warm_rows, warm_seconds, inc.extra["warm_cpu_seconds"], "warm call"))
    print(
        "\nseconds: wall time of the median run; CPU s: its process's CPU time, all threads"
        " (not PostgreSQL's);\nRSS MB: the process before the measured call (interpreter,"
        " Django, pyarrow); peak MB: its peak RSS (highest of the runs)."
        f"\nThe product export wrote {product.extra['files']} files,"
        f" {product.extra['bytes'] / 2**20:.1f} MB;"
        f" the floor one file of {results.floor.extra['bytes'] / 2**20:.1f} MB."
    )

    small = results.flat[0]
    if len(results.flat) > 1:
        large, flat_name = results.flat[1], f"{FLAT_LARGE:,} vs {FLAT_SMALL:,}"
    else:
        large, flat_name = product, f"{results.events:,} vs {FLAT_SMALL:,} (5M skipped)"
    growth = large.peak_mb / small.peak_mb - 1
    floor_ratio = product.rate / results.floor.rate
    pandas_ratio = product.rate / results.pandas.rate
    uses_index = incremental.extra["uses_index"]
    targets = [
        (
            "product / floor, rows/s",
            f"{floor_ratio:.2f}",
            f">= {FLOOR_RATIO_MIN:.2f}",
            floor_ratio >= FLOOR_RATIO_MIN,
        ),
        (
            "product / pandas, rows/s",
            f"{pandas_ratio:.1f}x",
            f">= {PANDAS_RATIO_MIN:.0f}x",
            pandas_ratio >= PANDAS_RATIO_MIN,
        ),
        (
            f"peak RSS, export of {results.events:,}",
            f"{product.peak_mb:.0f} MB",
            f"< {PEAK_MB_MAX:.0f} MB",
            product.peak_mb < PEAK_MB_MAX,
        ),
        (
            f"peak RSS, {flat_name}",
            f"{growth:+.1%}",
            f"within {FLATNESS_MAX:.0%}",
            abs(growth) <= FLATNESS_MAX,
        ),
        (
            f"incremental +{INCREMENT:,}, first call",
            f"{incremental.seconds:.2f} s",
            f"< {INCREMENTAL_SECONDS_MAX:.0f} s",
            incremental.seconds < INCREMENTAL_SECONDS_MAX,
        ),
        ("cursor query scans an event_seq index", "yes" if uses_index else "no", "yes", uses_index),
    ]
    header = f"{'target':<46} {'value':>10} {'goal':>12}  result"
    print(f"\n{header}\n{'-' * len(header)}")
    for name, value, goal, ok in targets:
        print(f"{name:<46} {value:>10} {goal:>12}  {'PASS' if ok else 'FAIL'}")
    watermark = incremental.extra["watermark"]
    print(f"\nEXPLAIN ANALYZE of the exporter's cursor query after event_seq {watermark:,}:")
    for line in incremental.extra["plan"].splitlines():
        print(f"    {line}")
    return all(ok for *_, ok in targets)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to export")
    parser.add_argument("--skip-5m", action="store_true", help="skip the 5,000,000-event run")
    parser.add_argument("--keep-db", action="store_true", help=f"keep {BENCH_DATABASE}")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of measurements 1-3 (the median is kept)"
    )
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--step-us", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    base = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    url = database_url(base, BENCH_DATABASE)
    admin_url = database_url(base, "postgres")
    recreate_database(admin_url, BENCH_DATABASE)
    try:
        with tempfile.TemporaryDirectory(prefix="bench_bronze_") as tmp:
            results = run_all(args, url, Path(tmp))
    finally:
        if not args.keep_db:
            drop_database(admin_url, BENCH_DATABASE)
    return 0 if report(results) else 1


if __name__ == "__main__":
    sys.exit(main())
