"""Benchmark silver.stop_executions: Spark as production submits it, against DuckDB.

    python -m benchmarks.silver_bench [--sizes 1000000,10000000] [--keep] [--stages]

For each size (bronze events), it:

1. generates synthetic ``bronze.events`` in the exporter's exact layout and schema
   (``bronze/events/date=D/part-<batch>-<index>.parquet`` + ``_metadata/`` manifests,
   columns and Arrow types of ``datalake.bronze.schemas.EVENTS.file_schema``, batches of
   the exporter's default 250,000 rows in ``event_seq`` order), vectorised with numpy and
   pyarrow, and caches it under ``/tmp/silver-bench/input-<version>-<size>/``: the base
   lake (``DAYS`` days) and one more day of events for the incremental run;
2. runs the real job with the ``spark-submit`` command line that Django builds
   (``datalake.spark.submit.build_command`` with the default settings: ``local[*]``, 2g,
   ``--py-files`` from ``package_jobs``, the driver's class-data archive as the runner
   keeps it, under ``/tmp/silver-bench/classes/``, written first by a small build if
   missing): ``spark_jobs/main.py silver.stop_executions --lake-uri L --run-id N
   --result-file F --overwrite`` (a full build);
3. runs a DuckDB reference of the same replay over the same files, written in the same
   ``client_id=/date=`` layout, and compares the two outputs row by row;
4. adds the next day's bronze files (plus the previous day's late events) and runs the
   job again with ``--dates <new day>,<previous day> --new-files <their keys>`` and the
   daily runs' driver JVM options, as the daily run does, then checks
   the incrementally maintained silver against a DuckDB rebuild of the whole lake.

Prints the figures, then PASS/FAIL per target; exits 1 if a target is missed.
``--keep`` keeps the work lakes (Spark and DuckDB outputs, result JSON, Spark logs) under
``/tmp/silver-bench/work-<size>/``; the generated inputs are always cached. ``--stages``
also turns on Spark's event log (not in production's command) and prints the time of each
Spark SQL execution and stage of every run.
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datalake.bronze.schemas import EVENTS, SCHEMA_VERSION, Dataset
from datalake.conf import DEFAULTS
from datalake.spark.classdata import class_archive
from datalake.spark.submit import SubmitConfig, build_command, lake_conf, package_jobs
from spark_jobs.silver.stop_executions import (
    EXECUTED,
    EXECUTION_NAMESPACE,
    FAILED,
    SLIPPAGE_BREACH,
    STATUS_AFTER,
    SUBMITTED,
    TRIGGERED,
)

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path("/tmp/silver-bench")
GENERATOR_VERSION = "v1"  # part of the cache key: bump it when the generator changes

DEFAULT_SIZES = "1000000,10000000"
CLIENTS = 20
DAYS = 45  # days in the base lake; the incremental run adds the day after
START = datetime(2025, 1, 1, tzinfo=UTC)
BATCH_ROWS = 250_000  # the exporter's default batch size (DATALAKE EXPORT_BATCH_SIZE)
DUPLICATE_FRACTION = 0.0001  # rows present twice in bronze (the job dedupes by event_id)
MIDNIGHT_FRACTION = 0.004  # executions queued across midnight
SEED = 20250101

RATIO_MAX = 5.0  # Spark job time (excl. start-up) / DuckDB time, at the largest size
RATIO_AT = 10_000_000
INCREMENTAL_SECONDS_MAX = 30.0
WARM_UP_SIZE = 20_000  # events of the run that writes the class-data archive, if none
CLASS_ARCHIVE_DIR = CACHE / "classes"  # the driver's class-data archive, as Django keeps it
DUCKDB_MEMORY = "8GB"  # DuckDB's default (80% of RAM) let the 10M comparison exhaust it

DAY_US = 86_400 * 10**6
START_US = int(START.timestamp()) * 10**6
UNITS = 10**8  # decimal128(20, 8)

# -- Synthetic bronze.events ---------------------------------------------------------------

STALE, KILL, BREAKER, BLOCKED = "STALE_PRICE", "KILL_SWITCH", "CIRCUIT_BREAKER", "BLOCKED"
TYPES = (TRIGGERED, SUBMITTED, EXECUTED, FAILED, SLIPPAGE_BREACH, STALE, KILL, BREAKER, BLOCKED)
T, S, X, F, SB, ST, KS, CB, B = range(len(TYPES))

#: Executions follow the backend's transitions (api/demo/core.py TRANSITIONS): (events, weight).
PATHS: tuple[tuple[tuple[int, ...], float], ...] = (
    ((T, S, X), 0.60),
    ((T, S, X, SB), 0.05),
    ((T, S, F), 0.04),
    ((T, S, F, S, X), 0.12),
    ((T, S, F, S, X, SB), 0.01),
    ((T, S, F, S, F), 0.03),
    ((T, S, F, CB, B), 0.01),
    ((T, ST, B), 0.06),
    ((T, KS, B), 0.04),
    ((T, CB, B), 0.02),
)
WIDTH = max(len(p) for p, _ in PATHS)

SYMBOLS = (
    ("BTCUSDT", 95_000.0),
    ("ETHUSDT", 3_300.0),
    ("SOLUSDC", 190.0),
    ("BNBUSDT", 650.0),
    ("XRPUSDT", 2.2),
    ("ADAUSDC", 0.9),
    ("DOGEUSDT", 0.32),
    ("AVAXUSDT", 38.0),
    ("LINKUSDC", 22.0),
    ("DOTUSDT", 7.1),
    ("BTCEUR", 91_000.0),
    ("ETHBTC", 0.035),
)
TICK = 10**4  # 0.0001 in units of 1e-8
STEP = 10**3  # lot step 0.00001
SOURCES = ("ws", "cron", "manual")
ERRORS = (
    "Binance -2010: Account has insufficient balance for requested action.",
    "Binance -1013: Filter failure: LOT_SIZE",
    "Binance -1001: Internal error; unable to process your request. Please try again.",
    "Price feed stale for more than 5 s",
    "Kill switch active for this client",
    "Circuit breaker open after repeated exchange failures",
    "Slippage exceeds the strategy's limit",
)


def uuid_strings(rng: np.random.Generator, n: int) -> pa.Array:
    """Return ``n`` random version-4 UUIDs as a string array (no Python loop)."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    hexed = np.empty((n, 32), dtype=np.uint8)
    hexed[:, 0::2], hexed[:, 1::2] = digits[raw >> 4], digits[raw & 15]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    for (a, b), (c, d) in zip(
        ((0, 8), (9, 13), (14, 18), (19, 23), (24, 36)),
        ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32)),
        strict=True,
    ):
        text[:, a:b] = hexed[:, c:d]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def decimals(unscaled: np.ndarray, dtype: pa.DataType, valid: np.ndarray | None = None) -> pa.Array:
    """Return a decimal128 array from integer unscaled values (exact, no float rounding)."""
    n = len(unscaled)
    words = np.empty((n, 2), dtype=np.int64)
    words[:, 0] = unscaled
    words[:, 1] = unscaled >> 63  # two's complement sign extension to 128 bits
    bitmap, nulls = None, 0
    if valid is not None:
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        nulls = int(n - valid.sum())
    return pa.Array.from_buffers(dtype, n, [bitmap, pa.py_buffer(words)], null_count=nulls)


def choices(
    values: tuple[str, ...], index: np.ndarray, valid: np.ndarray | None = None
) -> pa.Array:
    """Return ``values[index]`` as a string array, null where ``valid`` is False."""
    mask = None if valid is None else ~valid
    indices = pa.array(index.astype(np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(values)).cast(pa.string())


def ticks(values: np.ndarray) -> np.ndarray:
    return np.maximum(TICK, (values // TICK) * TICK).astype(np.int64)


@dataclass
class Generated:
    """The generated events in recording order (event_seq), split into base and increment."""

    table: pa.Table
    day: np.ndarray  # day number (since START) of each row's occurred_at
    base_rows: int
    executions: int


def generate(size: int) -> Generated:
    """Return about ``size`` base events (DAYS days), plus the next day's as an increment."""
    rng = np.random.default_rng(SEED + size)
    weights = np.array([w for _, w in PATHS])
    weights /= weights.sum()
    lengths = np.array([len(p) for p, _ in PATHS])
    mean_length = float(weights @ lengths)
    n_exec = int(size * (DAYS + 1) / DAYS / mean_length) + 1

    # Paths as a matrix: event type and retry_count by position.
    kinds = np.full((len(PATHS), WIDTH), -1, dtype=np.int8)
    retries = np.zeros((len(PATHS), WIDTH), dtype=np.int32)
    for i, (path, _) in enumerate(PATHS):
        kinds[i, : len(path)] = path
        failures = 0
        for j, kind in enumerate(path):
            retries[i, j] = failures if kind != T else 0
            failures += kind == F

    # Operations: client (skewed activity), strategy, symbol, side, stop and quantity.
    n_ops = n_exec * 7 // 10 + 1
    client_weights = 1 / np.arange(1, CLIENTS + 1) ** 0.8
    op_client = rng.choice(CLIENTS, n_ops, p=client_weights / client_weights.sum()) + 1
    op_strategy = op_client * 100 + rng.integers(0, 3, n_ops)
    op_symbol = rng.integers(0, len(SYMBOLS), n_ops)
    prices = np.array([p for _, p in SYMBOLS])[op_symbol]
    op_stop = ticks(prices * rng.uniform(0.85, 1.15, n_ops) * UNITS)
    notional = rng.uniform(100, 5_000, n_ops)
    op_qty = np.maximum(STEP, (notional / prices * UNITS // STEP * STEP)).astype(np.int64)
    op_close_sell = rng.random(n_ops) < 0.7  # long positions close with a SELL

    # Executions: path, operation, source, trigger time and price, slippage.
    path = rng.choice(len(PATHS), n_exec, p=weights)
    op = rng.integers(0, n_ops, n_exec)
    source = rng.choice(3, n_exec, p=[0.85, 0.12, 0.03])
    start = START_US + rng.integers(0, (DAYS + 1) * DAY_US, n_exec)
    midnight = (rng.random(n_exec) < MIDNIGHT_FRACTION) & (kinds[path, 1] == S)
    start[midnight] = (start[midnight] // DAY_US + 1) * DAY_US - rng.integers(
        10**6, 180 * 10**6, int(midnight.sum())
    )
    trigger = ticks(op_stop[op] * (1 + rng.uniform(-0.002, 0.002, n_exec)))
    breach = np.isin(kinds[path], [SB]).any(axis=1)
    slip = np.clip(rng.normal(0.03, 0.15, n_exec), -0.5, 0.5)
    slip[breach] = rng.uniform(0.6, 4.0, int(breach.sum()))
    flash = breach & (rng.random(n_exec) < 0.05)
    slip[flash] = rng.uniform(5.0, 15.0, int(flash.sum()))
    slip_units = np.round(slip * 10**4).astype(np.int64)  # decimal128(10, 4)
    sell = op_close_sell[op]
    fill = ticks(trigger * (1 - np.where(sell, slip, -slip) / 100))
    tokens = uuid_strings(rng, n_exec)

    # Events: one row per (execution, position).
    length = lengths[path]
    n = int(length.sum())
    ex = np.repeat(np.arange(n_exec), length)
    first_row = np.cumsum(length) - length
    pos = np.arange(n) - np.repeat(first_row, length)
    kind = kinds[path[ex], pos].astype(np.int64)
    prev = np.where(pos > 0, kinds[path[ex], np.maximum(pos - 1, 0)], -1)
    retry = retries[path[ex], pos]
    u = rng.random(n)
    gap = np.select(
        [
            kind == T,
            (kind == S) & (prev == T) & (source[ex] == 0),
            (kind == S) & (prev == T),
            kind == S,  # a retry after a failure: exponential backoff
            kind == X,
            kind == F,
            kind == SB,
            np.isin(kind, [ST, KS, CB]),
            (kind == B) & (prev == KS),
        ],
        [
            0,
            30_000 + u * 270_000,
            500_000 + u * 4_500_000,
            500_000 * 2.0**retry * (0.8 + 0.4 * u),
            30_000 + np.exp(-1.4 + 0.6 * rng.standard_normal(n)) * 10**6,
            200_000 + u * 2_800_000,
            500 + u * 19_500,
            1_000 + u * 149_000,
            0,
        ],
        default=u * 25_000,  # BLOCKED right after its guard
    ).astype(np.int64)
    queued = midnight[ex] & (pos == 1)
    gap[queued] += rng.integers(60 * 10**6, 900 * 10**6, int(queued.sum()))
    csum = np.cumsum(gap)
    occurred = start[ex] + csum - np.repeat(csum[first_row], length)

    # event_seq: the order the backend recorded events (occurred_at + an ingest lag).
    r = rng.random(n)
    lag = np.where(
        r < 0.955,
        rng.exponential(40_000, n),
        np.where(r < 0.97, rng.integers(1, 31, n) * 10**6, 60 * 10**6 * 240.0 ** rng.random(n)),
    ).astype(np.int64)
    recorded = occurred + lag
    cutoff, end = START_US + DAYS * DAY_US, START_US + (DAYS + 1) * DAY_US
    order = np.argsort(recorded, kind="stable")
    order = order[recorded[order] < end]  # recorded after the increment: never exported
    base_rows = int(np.searchsorted(recorded[order], cutoff))

    ex, pos, kind, retry, occurred = (a[order] for a in (ex, pos, kind, retry, occurred))
    m = len(order)
    e_op = op[ex]
    executed = np.isin(kind, [X, SB])
    error = np.select(
        [kind == F, kind == ST, kind == KS, kind == CB, kind == SB, kind == B],
        [rng.integers(0, 3, m), 3, 4, 5, 6, np.where(prev[order] == ST, 3, 5)],
        default=-1,
    )
    payload = pc.binary_join_element_wise(
        '{"strategy_id": ',
        pc.cast(pa.array(op_strategy[op]), pa.string()),
        ', "trigger_source": "',
        choices(SOURCES, source),
        '", "slippage_limit_pct": "0.50", "operation_side": "',
        choices(("BUY", "SELL"), sell.astype(np.int8)),
        '"}',
        "",
    )
    ex_arrow = pa.array(ex)
    order_id = 4_100_000_000 + ex * 4 + retry
    columns = {
        "event_id": uuid_strings(rng, m),
        "event_seq": pa.array(np.arange(1, m + 1, dtype=np.int64)),
        "occurred_at": pa.array(occurred, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "operation_id": pa.array(e_op + 1),
        "client_id": pa.array(op_client[e_op].astype(np.int64)),
        "symbol": choices(tuple(s for s, _ in SYMBOLS), op_symbol[e_op]),
        "event_type": choices(TYPES, kind),
        "trigger_price": decimals(trigger[ex], pa.decimal128(20, 8)),
        "stop_price": decimals(op_stop[e_op], pa.decimal128(20, 8)),
        "quantity": decimals(op_qty[e_op], pa.decimal128(20, 8)),
        "side": choices(("BUY", "SELL"), sell[ex].astype(np.int8)),
        "execution_token": pc.take(tokens, ex_arrow),
        "payload_json": pc.take(payload, ex_arrow),
        "exchange_order_id": pc.if_else(
            pa.array(executed), pc.cast(pa.array(order_id), pa.string()), None
        ),
        "fill_price": decimals(fill[ex], pa.decimal128(20, 8), executed),
        "slippage_pct": decimals(slip_units[ex], pa.decimal128(10, 4), executed),
        "source": choices(SOURCES, source[ex]),
        "error_message": choices(ERRORS, np.maximum(error, 0), error >= 0),
        "retry_count": pa.array(retry.astype(np.int32)),
    }
    table = pa.table(columns).cast(EVENTS.file_schema)
    day = (occurred - START_US) // DAY_US

    # A few rows exported twice (the job keeps one per event_id), next to their original.
    dupes = np.sort(rng.choice(base_rows, int(base_rows * DUPLICATE_FRACTION), replace=False))
    keep = np.sort(np.concatenate([np.arange(m), dupes]))
    table, day = table.take(pa.array(keep)), day[keep]
    return Generated(table, day, base_rows + len(dupes), n_exec)


def partition_paths(dataset: Dataset, table: pa.Table) -> pa.Array:
    """Return each row's partition path as the exporter spells it (``client_id=3/date=...``:
    the dataset's partition columns, then the UTC date of its time column)."""
    parts = [
        pc.binary_join_element_wise(f"{name}=", pc.cast(table[name], pa.string()), "")
        for name in dataset.partition_by
    ]
    dates = pc.cast(pc.cast(table[dataset.time_column], pa.date32()), pa.string())
    parts.append(pc.binary_join_element_wise("date=", dates, ""))
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "/")


def write_bronze(root: Path, dataset: Dataset, table: pa.Table, first_batch: int) -> int:
    """Write ``table`` (rows of ``dataset`` in cursor order) as the exporter does: batches
    of :data:`BATCH_ROWS`, one file per partition each, with its ``_metadata/`` manifest.

    Returns the number of the next batch.
    """
    number = first_batch
    names = dataset.file_schema.names
    for offset in range(0, table.num_rows, BATCH_ROWS):
        batch = table.slice(offset, BATCH_ROWS)
        keys = partition_paths(dataset, batch)
        for index, partition in enumerate(sorted(pc.unique(keys).to_pylist())):
            part = batch.filter(pc.equal(keys, partition)).select(names)
            name = f"part-{number:08d}-{index:04d}"
            directory = root / dataset.prefix / partition
            (directory / "_metadata").mkdir(parents=True, exist_ok=True)
            path = directory / f"{name}.parquet"
            pq.write_table(part, path, compression="zstd")
            cursor = part[dataset.cursor]
            manifest = {
                "schema_version": SCHEMA_VERSION,
                "dataset": dataset.name,
                "file": path.name,
                "key": f"{dataset.prefix}/{partition}/{path.name}",
                "kind": "data",
                "partition": dict(p.split("=", 1) for p in partition.split("/")),
                "rows": part.num_rows,
                "bytes": path.stat().st_size,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "cursor_column": dataset.cursor,
                "min_cursor": pc.min(cursor).as_py(),
                "max_cursor": pc.max(cursor).as_py(),
                "batch": number,
                "run_id": 0,
                "columns": [{"name": f.name, "type": str(f.type)} for f in dataset.file_schema],
            }
            (directory / "_metadata" / f"{name}.json").write_text(json.dumps(manifest))
        number += 1
    return number


def ensure_input(size: int) -> tuple[Path, dict[str, Any]]:
    """Return the cached input of ``size`` events (generated on first use) and its facts."""
    directory = CACHE / f"input-{GENERATOR_VERSION}-{size}"
    info_path = directory / "info.json"
    if info_path.exists():
        say(f"{size:,}: cached input {directory}")
        return directory, json.loads(info_path.read_text())
    shutil.rmtree(directory, ignore_errors=True)
    say(f"{size:,}: generating bronze.events under {directory} ...")
    started = time.perf_counter()
    data = generate(size)
    base, rest = data.table.slice(0, data.base_rows), data.table.slice(data.base_rows)
    next_batch = write_bronze(directory / "base", EVENTS, base, 1)
    write_bronze(directory / "increment", EVENTS, rest, next_batch)
    new_date = (START + timedelta(days=DAYS)).date()
    info = {
        "size": size,
        "base_events": base.num_rows,
        "increment_events": rest.num_rows,
        "late_events": int((data.day[data.base_rows :] < DAYS).sum()),
        "executions_generated": data.executions,
        "first_date": START.date().isoformat(),
        "last_date": (new_date - timedelta(days=1)).isoformat(),
        "new_date": new_date.isoformat(),
        "base_files": count_files(directory / "base" / "bronze" / "events"),
        "increment_files": count_files(directory / "increment" / "bronze" / "events"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    info_path.write_text(json.dumps(info, indent=2))  # written last: marks the cache complete
    say(f"{size:,}: generated in {info['seconds']:.1f} s: {info}")
    return directory, info


def link_tree(source: Path, target: Path) -> None:
    """Hard-link every file of ``source`` into ``target`` (published files are immutable)."""
    for path in source.rglob("*"):
        if path.is_file():
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, dest)
            except OSError:
                shutil.copy2(path, dest)


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*.parquet") if not p.name.startswith((".", "_")))


@dataclass
class Layout:
    """Files per partition of a client_id=/date= output."""

    partitions: int
    files: int
    mean: float
    max: int
    dates: int


def layout(root: Path) -> Layout:
    counts = Counter(
        p.parent.relative_to(root).as_posix()
        for p in root.glob("client_id=*/date=*/*.parquet")
        if not p.name.startswith((".", "_"))
    )
    values = list(counts.values()) or [0]
    dates = {key.split("/", 1)[1] for key in counts}
    return Layout(
        len(counts), sum(values), sum(values) / max(1, len(counts)), max(values), len(dates)
    )


# -- Spark: the production command line ----------------------------------------------------


@dataclass
class SparkRun:
    wall: float
    cpu: float  # CPU seconds of spark-submit and its children (JVM, Python driver)
    result: dict[str, Any]
    command: list[str]
    log: Path
    stages: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> dict[str, float]:
        return self.result.get("seconds", {})

    @property
    def startup(self) -> float:
        """JVM and Python launch (wall - main()'s total) plus SparkSession creation."""
        return self.wall - self.seconds["total"] + self.seconds["spark_startup"]

    @property
    def job(self) -> float:
        return self.wall - self.startup


def submit_config() -> SubmitConfig:
    """Return Django's SubmitConfig: its defaults, or the same environment variables."""
    extra = os.environ.get("SPARK_CONF", "")
    return SubmitConfig(
        spark_submit=os.environ.get(
            "SPARK_SUBMIT", str(Path(sys.executable).parent / "spark-submit")
        ),
        master=os.environ.get("SPARK_MASTER", "local[*]"),
        driver_memory=os.environ.get("SPARK_DRIVER_MEMORY", "2g"),
        executor_memory=os.environ.get("SPARK_EXECUTOR_MEMORY", "2g"),
        conf=dict(item.split("=", 1) for item in extra.split(",") if item),
    )


def run_spark(
    work: Path,
    lake: Path,
    run_id: int,
    extra: list[str],
    stages: bool,
    job: str = "silver.stop_executions",
    java_options: str = "",
) -> SparkRun:
    """spark-submit ``job`` as datalake.spark.runner does, and time it."""
    spark_dir = work / "spark"
    (spark_dir / "logs").mkdir(parents=True, exist_ok=True)
    result_file = spark_dir / f"run-{run_id}-result.json"
    result_file.unlink(missing_ok=True)
    config = submit_config()
    archive = class_archive(CLASS_ARCHIVE_DIR)
    conf = lake_conf(str(lake), endpoint_url=None, addressing_style="auto")
    events_dir = spark_dir / "events"
    if stages:
        events_dir.mkdir(exist_ok=True)
        conf |= {
            "spark.eventLog.enabled": "true",
            "spark.eventLog.compress": "false",
            "spark.eventLog.dir": events_dir.as_uri(),
        }
    args = [job, "--lake-uri", str(lake), "--run-id", str(run_id),
            "--result-file", str(result_file), *extra]  # fmt: skip
    command = build_command(
        config,
        main=str(ROOT / "spark_jobs" / "main.py"),
        args=args,
        py_files=str(package_jobs(ROOT / "spark_jobs", spark_dir / "packages")),
        app_name=f"robson-{job}-{run_id}",
        extra_conf=conf,
        driver_java_options=f"{archive.java_option} {java_options}".strip(),
    )
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    log = spark_dir / "logs" / f"run-{run_id}.log"
    before = set(events_dir.glob("*")) if stages else set()
    cpu = children_cpu()
    started = time.perf_counter()
    with log.open("w") as handle:
        code = subprocess.run(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False
        ).returncode
    wall = time.perf_counter() - started
    cpu = children_cpu() - cpu
    archive.finish(succeeded=code == 0)
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    if code != 0 or result.get("status") != "succeeded":
        tail = log.read_text().splitlines()[-30:]
        sys.exit(
            f"spark-submit exited {code} ({result.get('error')}); log {log}:\n" + "\n".join(tail)
        )
    run = SparkRun(wall, cpu, result, command, log)
    if stages:
        new = sorted(set(events_dir.glob("*")) - before)
        run.stages = event_log_summary(new[-1]) if new else ["(no event log found)"]
    return run


def ensure_class_archive(work: Path) -> None:
    """Write the driver's class-data archive with a small silver build if there is none
    yet (as the first run on a machine does), so that no measured run pays for it."""
    if class_archive(CLASS_ARCHIVE_DIR).partial is None:
        return
    say("first run on this machine: a small build writes the class-data archive ...")
    source, _ = ensure_input(WARM_UP_SIZE)
    link_tree(source / "base", work / "warm-up")
    run_spark(work, work / "warm-up", 0, ["--overwrite"], False)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def event_log_summary(path: Path) -> list[str]:
    """Return one line per Spark SQL execution, and per stage, from an event log."""
    sql: dict[int, dict[str, Any]] = {}
    stages: list[dict[str, Any]] = []
    files = sorted(path.glob("events_*"), key=lambda f: int(f.name.split("_")[1]))
    lines = [x for f in files or [path] for x in f.read_text().splitlines() if x]
    for line in lines:
        event = json.loads(line)
        kind = event.get("Event", "")
        if kind.endswith("SparkListenerSQLExecutionStart"):
            sql[event["executionId"]] = {"start": event["time"], "desc": event["description"]}
        elif kind.endswith("SparkListenerSQLExecutionEnd"):
            sql.setdefault(event["executionId"], {"start": event["time"], "desc": "?"})
            sql[event["executionId"]]["end"] = event["time"]
        elif kind == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            stages.append(info)
    lines = ["SQL executions (wall ms, description):"]
    for key in sorted(sql):
        item = sql[key]
        if "end" in item:
            lines.append(f"  {item['end'] - item['start']:>7} ms  #{key} {item['desc'][:90]}")
    lines.append("stages (wall ms, tasks, name):")
    for info in stages:
        took = info.get("Completion Time", 0) - info.get("Submission Time", 0)
        name = info["Stage Name"][:80]
        lines.append(f"  {took:>7} ms  {info['Number of Tasks']:>4}  #{info['Stage ID']} {name}")
    return lines


# -- DuckDB reference ----------------------------------------------------------------------


def uuid5_text(digest: str) -> str:
    """Return the DuckDB SQL that spells the SHA-1 hex digest column ``digest`` (of the
    namespace's bytes and the name's) as a version-5 UUID, as ``uuid.uuid5`` does."""
    return (
        f"printf('%s-%s-5%s-%x%s-%s', {digest}[1:8], {digest}[9:12], {digest}[14:16],"
        f" (('0x' || {digest}[17])::INTEGER & 3) | 8, {digest}[18:20], {digest}[21:32])"
    )


def replay_sql(bronze_glob: str) -> str:
    """Return the job's replay (spark_jobs/silver/stop_executions.py) in DuckDB SQL.

    Duplicates are dropped by joining the few duplicated event_ids rather than with a
    window over all events: a window hands the rows to the replay's aggregation in
    event_id order, which made DuckDB's aggregation 3.5 times slower at 10M events (the
    tokens are no longer clustered as they are in bronze).
    """
    state = " ".join(f"WHEN '{kind}' THEN '{status}'" for kind, status in STATUS_AFTER.items())
    key = "(occurred_at, event_seq)"

    def of_trigger(column: str) -> str:
        return (
            f"coalesce(arg_min_null({column}, {key}) FILTER (WHERE event_type = '{TRIGGERED}'),"
            f" arg_min_null({column}, {key})) AS {column}"
        )

    def last_value(column: str, alias: str | None = None) -> str:
        return f"arg_max({column}, {key}) FILTER (WHERE {column} IS NOT NULL) AS {alias or column}"

    def at(kind: str, pick: str) -> str:
        return f"{pick}(occurred_at) FILTER (WHERE event_type = '{kind}')"

    trigger_columns = ("operation_id", "client_id", "symbol", "side", "stop_price",
                       "trigger_price", "quantity", "source", "payload_json")  # fmt: skip
    h = f"sha1(unhex('{EXECUTION_NAMESPACE.hex}') || encode(execution_token))"
    return f"""
    WITH raw AS (
        SELECT *, (event_seq, occurred_at, filename, file_row_number) AS _copy
        FROM read_parquet('{bronze_glob}', hive_partitioning = false, filename = true,
                          file_row_number = true)
        WHERE execution_token IS NOT NULL
    ), copies AS (  -- event_ids held more than once, and the copy kept (lowest event_seq)
        SELECT event_id, min(_copy) AS _kept FROM raw GROUP BY event_id HAVING count(*) > 1
    ), events AS (
        SELECT raw.* EXCLUDE (_copy, filename, file_row_number),
               CASE event_type {state} END AS _state
        FROM raw LEFT JOIN copies USING (event_id)
        WHERE copies.event_id IS NULL OR raw._copy = copies._kept
    ), replayed AS (
        SELECT
            execution_token,
            {", ".join(of_trigger(c) for c in trigger_columns)},
            {last_value("_state", "status")},
            {at(TRIGGERED, "min")} AS triggered_at,
            {at(SUBMITTED, "min")} AS submitted_at,
            {at(EXECUTED, "max")} AS executed_at,
            {at(FAILED, "max")} AS failed_at,
            max(occurred_at) FILTER (WHERE _state IS NOT NULL) AS resolved_at,
            min(occurred_at) AS _first_at,
            {last_value("exchange_order_id")},
            {last_value("fill_price")},
            {last_value("slippage_pct")},
            bool_or(event_type = '{SLIPPAGE_BREACH}') AS slippage_breach,
            coalesce(max(retry_count), 0) AS retry_count,
            {last_value("error_message")},
            count(*) AS event_count,
            min(event_seq) AS first_event_seq,
            max(event_seq) AS last_event_seq,
            list(event_id ORDER BY occurred_at, event_seq, event_id) AS source_event_ids
        FROM events
        GROUP BY execution_token
    ), hashed AS (
        SELECT *, {h} AS _h FROM replayed
    )
    SELECT
        {uuid5_text("_h")} AS execution_id,
        execution_token, operation_id,
        TRY_CAST(json_extract_string(payload_json, '$.strategy_id') AS BIGINT) AS strategy_id,
        symbol, side, status, stop_price, trigger_price, quantity,
        triggered_at, submitted_at, executed_at, failed_at, resolved_at,
        exchange_order_id, fill_price, slippage_pct, slippage_breach,
        retry_count::INTEGER AS retry_count, error_message, source,
        event_count::INTEGER AS event_count, first_event_seq, last_event_seq, source_event_ids,
        now() AS created_at,
        client_id,
        CAST(coalesce(triggered_at, _first_at) AS DATE) AS date
    FROM hashed
    ORDER BY client_id, date, triggered_at, execution_token
    """


def duckdb_session(out: Path) -> duckdb.DuckDBPyConnection:
    """Return a DuckDB connection set up as the benches run it (every CPU, the memory
    limit, UTC, spills beside ``out``), after emptying ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count()}")
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
    con.execute(f"SET temp_directory = '{out.parent / 'duckdb-tmp'}'")
    con.execute("SET TimeZone = 'UTC'")
    return con


def run_duckdb(lake: Path, out: Path) -> tuple[float, float]:
    """Rebuild silver.stop_executions of ``lake`` with DuckDB into ``out``.

    Returns (wall seconds, CPU seconds of all of this process's threads).
    """
    cpu = time.process_time()
    started = time.perf_counter()
    con = duckdb_session(out)
    glob = f"{lake}/bronze/events/*/*.parquet"
    con.execute(
        f"COPY ({replay_sql(glob)}) TO '{out}'"
        " (FORMAT parquet, PARTITION_BY (client_id, date), COMPRESSION zstd)"
    )
    con.close()
    return time.perf_counter() - started, time.process_time() - cpu


COMPARED = (
    "execution_token", "operation_id", "strategy_id", "symbol", "side", "status",
    "stop_price", "trigger_price", "quantity", "triggered_at", "submitted_at", "executed_at",
    "failed_at", "resolved_at", "exchange_order_id", "fill_price", "slippage_pct",
    "slippage_breach",
    "retry_count", "error_message", "source", "event_count", "first_event_seq",
    "last_event_seq", "source_event_ids", "client_id", "date",
)  # fmt: skip


@dataclass
class Comparison:
    spark_rows: int
    duck_rows: int
    spark_status: dict[str, int]
    duck_status: dict[str, int]
    mismatched: int  # executions missing on one side or differing in a compared column
    example: str

    @property
    def agree(self) -> bool:
        return (
            self.spark_rows == self.duck_rows
            and self.spark_status == self.duck_status
            and self.mismatched == 0
        )


def compare(spark_out: Path, duck_out: Path) -> Comparison:
    """Compare two silver.stop_executions outputs (every column but created_at)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
    con.execute(f"SET temp_directory = '{duck_out.parent / 'duckdb-tmp'}'")
    for name, path in (("s", spark_out), ("d", duck_out)):
        con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet("
            f"'{path}/client_id=*/date=*/*.parquet', hive_partitioning = true)"
        )

    def status(name: str) -> dict[str, int]:
        rows = con.execute(f"SELECT status, count(*) FROM {name} GROUP BY 1 ORDER BY 1").fetchall()
        return {str(k): int(v) for k, v in rows}

    # One digest per row of the compared columns: the join then holds two narrow columns
    # (a full join of 3M wide rows ran this VM out of memory).
    digest = f"md5(CAST(({', '.join(COMPARED)}) AS VARCHAR))"
    query = (
        "SELECT coalesce(s.execution_id, d.execution_id) AS id,"
        " s.h IS DISTINCT FROM d.h AS bad"
        f" FROM (SELECT execution_id, {digest} AS h FROM s) s"
        f" FULL JOIN (SELECT execution_id, {digest} AS h FROM d) d"
        " ON s.execution_id = d.execution_id"
    )
    mismatched, example = con.execute(
        f"SELECT count(*) FILTER (WHERE bad), min(id) FILTER (WHERE bad) FROM ({query})"
    ).fetchone()
    result = Comparison(
        spark_rows=con.execute("SELECT count(*) FROM s").fetchone()[0],
        duck_rows=con.execute("SELECT count(*) FROM d").fetchone()[0],
        spark_status=status("s"),
        duck_status=status("d"),
        mismatched=int(mismatched),
        example=str(example or ""),
    )
    con.close()
    return result


# -- One size ------------------------------------------------------------------------------


@dataclass
class SizeResult:
    size: int
    info: dict[str, Any]
    full: SparkRun
    spark_layout: Layout
    duck_seconds: float
    duck_cpu: float
    duck_layout: Layout
    comparison: Comparison
    incremental: SparkRun
    after: Comparison

    @property
    def ratio(self) -> float:
        """Spark's job time (wall, excluding start-up) over DuckDB's wall time."""
        return self.full.job / self.duck_seconds

    def cpu_ratio(self, empty: SparkRun) -> float:
        """Spark's CPU time beyond an empty job's over DuckDB's CPU time (load-independent)."""
        return (self.full.cpu - empty.cpu) / self.duck_cpu


def daily_args(source: Path, info: dict[str, Any]) -> list[str]:
    """Return the scope arguments Django gives the daily run after the increment: the
    dates of the new bronze files and their lake keys (``datalake.silver.new_bronze``)."""
    new_date = date.fromisoformat(info["new_date"])
    dates = f"{new_date.isoformat()},{(new_date - timedelta(days=1)).isoformat()}"
    increment = source / "increment"
    keys = sorted(p.relative_to(increment).as_posix() for p in increment.rglob("*.parquet"))
    return ["--dates", dates, "--new-files", ",".join(keys)]


def bench_size(size: int, stages: bool) -> SizeResult:
    source, info = ensure_input(size)
    work = CACHE / f"work-{size}"
    shutil.rmtree(work, ignore_errors=True)
    lake = work / "lake"
    link_tree(source / "base", lake)
    silver = lake / "silver" / "stop_executions"

    say(f"{size:,}: Spark full build ...")
    full = run_spark(work, lake, 1, ["--overwrite"], stages)
    say(f"{size:,}: Spark full build: {full.wall:.1f} s wall, {full.seconds}")
    spark_layout = layout(silver)

    say(f"{size:,}: DuckDB reference ...")
    duck_out = work / "duckdb" / "silver" / "stop_executions"
    duck_seconds, duck_cpu = run_duckdb(lake, duck_out)
    say(f"{size:,}: DuckDB reference: {duck_seconds:.1f} s, CPU {duck_cpu:.1f} s")
    comparison = compare(silver, duck_out)

    link_tree(source / "increment", lake)
    say(f"{size:,}: Spark incremental {' '.join(daily_args(source, info)[:2])} --new-files ...")
    incremental = run_spark(
        work, lake, 2, [*daily_args(source, info), "--overwrite"], stages,
        java_options=DEFAULTS["SPARK_DAILY_JAVA_OPTIONS"],
    )  # fmt: skip
    say(f"{size:,}: Spark incremental: {incremental.wall:.1f} s wall, {incremental.seconds}")
    after_out = work / "duckdb-after" / "silver" / "stop_executions"
    run_duckdb(lake, after_out)
    after = compare(silver, after_out)
    return SizeResult(
        size, info, full, spark_layout, duck_seconds, duck_cpu, layout(duck_out), comparison,
        incremental, after,
    )  # fmt: skip


# -- Report --------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def cpu_pressure() -> str:
    """Return the share of time some task waited for a CPU over the last minute (PSI)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "n/a"
    return line.split()[2].split("=")[1] + " %"


def machine() -> str:
    load = os.getloadavg()
    return (
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f},"
        f" CPU pressure (some, 60 s) {cpu_pressure()}"
    )


def show_layout(label: str, lay: Layout) -> str:
    return (
        f"  {label:<14} {lay.partitions:>6,} partitions ({lay.dates} dates), {lay.files:,} files:"
        f" {lay.mean:.2f} mean / {lay.max} max per partition"
    )


def show_comparison(label: str, c: Comparison) -> list[str]:
    verdict = "agree" if c.agree else f"DIFFER ({c.mismatched:,} executions, e.g. {c.example})"
    return [
        f"  {label}: {verdict}",
        f"    Spark  {c.spark_rows:>10,} rows  {c.spark_status}",
        f"    DuckDB {c.duck_rows:>10,} rows  {c.duck_status}",
        f"    executions missing on one side or differing in any column but created_at:"
        f" {c.mismatched:,}",
    ]


def show_seconds(run: SparkRun) -> list[str]:
    s = run.seconds
    launch = run.wall - s["total"]
    measured = s["spark_startup"] + sum(s.get(k, 0.0) for k in ("write", "checks", "publish"))
    before = s["total"] - measured
    return [
        f"    wall {run.wall:.1f} s = start-up {run.startup:.1f} s (JVM + Python launch"
        f" {launch:.1f}, SparkSession {s['spark_startup']:.1f}) + job {run.job:.1f} s;"
        f" CPU {run.cpu:.1f} s",
        f"    job: read + replay + reconciliation count {before:.1f}, write {s.get('write', 0):.1f}"
        f" (partition list + staged files), checks {s.get('checks', 0):.1f},"
        f" publish {s.get('publish', 0):.1f}",
        f"    rows in {sum(run.result['inputs'].values()):,}, out"
        f" {sum(run.result['outputs'].values()):,}, files {run.result['files']:,},"
        f" partitions written {len(run.result['partitions']):,}",
    ]


def report(results: list[SizeResult], empty: SparkRun, stages: bool) -> bool:
    """Print the figures and the targets; return whether every target is met."""
    ok = True
    print(
        f"\nempty Spark job (diagnostics.sleep --seconds 0): wall {empty.wall:.1f} s,"
        f" SparkSession {empty.seconds['spark_startup']:.1f} s, CPU {empty.cpu:.1f} s"
    )
    print("spark-submit command (full build):\n  " + " ".join(results[0].full.command))
    for r in results:
        i = r.info
        print(
            f"\n== {r.size:,} events: bronze {i['base_events']:,} rows in {i['base_files']} files,"
            f" {i['first_date']} .. {i['last_date']}, {CLIENTS} clients,"
            f" {r.comparison.duck_rows:,} executions"
        )
        print(f"  Spark full build (run 1, log {r.full.log}):")
        print("\n".join(show_seconds(r.full)))
        print(show_layout("Spark output", r.spark_layout))
        print(f"  DuckDB reference: wall {r.duck_seconds:.1f} s, CPU {r.duck_cpu:.1f} s")
        print(show_layout("DuckDB output", r.duck_layout))
        print("\n".join(show_comparison("full build, Spark vs DuckDB", r.comparison)))
        print(
            f"  ratio Spark job (excl. start-up) / DuckDB: wall {r.ratio:.1f}x;"
            f" CPU (Spark minus the empty job's) {r.cpu_ratio(empty):.1f}x"
        )
        new_date = i["new_date"]
        print(
            f"  incremental: +{i['increment_events']:,} events in {i['increment_files']} files"
            f" (date={new_date}, and {i['late_events']:,} late events of date={i['last_date']});"
            f" --dates {new_date},{i['last_date']} --new-files <those {i['increment_files']}>"
        )
        print("\n".join(show_seconds(r.incremental)))
        partitions = r.incremental.result["partitions"]
        by_date = Counter(p.rsplit("=", 1)[1] for p in partitions)
        print(f"    partitions rewritten: {len(partitions)} {dict(sorted(by_date.items()))}")
        print("\n".join(show_comparison("after it, Spark vs a DuckDB rebuild", r.after)))
        if stages:
            for label, run in (("full build", r.full), ("incremental", r.incremental)):
                print(f"  Spark event log, {label}:")
                print("\n".join(f"    {line}" for line in run.stages))

    print("\ntargets:")
    for r in results:
        agree = r.comparison.agree and r.after.agree
        ok &= agree
        print(f"  {'PASS' if agree else 'FAIL'}  {r.size:,}: Spark and DuckDB outputs agree")
    for r in results:
        verdict = "info"
        if r.size >= RATIO_AT:
            verdict = "PASS" if r.ratio <= RATIO_MAX else "FAIL"
            ok &= verdict == "PASS"
        print(
            f"  {verdict:<4}  {r.size:,}: Spark job / DuckDB {r.ratio:.1f}x"
            f" (target <= {RATIO_MAX:g}x at {RATIO_AT:,})"
        )
    for r in results:
        seconds = r.incremental.wall
        verdict = "info"
        if r.size >= RATIO_AT:
            verdict = "PASS" if seconds < INCREMENTAL_SECONDS_MAX else "FAIL"
            ok &= verdict == "PASS"
        print(
            f"  {verdict:<4}  {r.size:,}: daily incremental {seconds:.1f} s incl. start-up"
            f" (target < {INCREMENTAL_SECONDS_MAX:g} s at {RATIO_AT:,})"
        )
    print(f"at the end: {machine()}")
    return ok


def parse_bench_args(doc: str, argv: list[str] | None) -> argparse.Namespace:
    """Parse the options every Spark-against-DuckDB bench takes (sizes, keep, stages)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help="bronze event counts, comma-separated"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work lakes and Spark logs")
    parser.add_argument("--stages", action="store_true", help="Spark event log: time per stage")
    args = parser.parse_args(argv)
    args.sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(",") if s)
    return args


def print_header(job: str, args: argparse.Namespace, cached: str = "") -> None:
    """Print the machine, versions, Spark and DuckDB settings and sizes of a bench run."""
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    print(
        f"{job} benchmark: {os.cpu_count()} CPUs, {memory:.0f} GB RAM;"
        f" pyspark {spark_version()}, duckdb {duckdb.__version__}, pyarrow {pa.__version__}"
    )
    print(f"at the start: {machine()}")
    print(
        f"Spark: {' '.join(submit_config_summary())}; spark_jobs at {source_version()};"
        f" DuckDB: threads {os.cpu_count()}, memory limit {DUCKDB_MEMORY};"
        f" sizes {', '.join(f'{s:,}' for s in args.sizes)}{cached}"
        + ("; Spark event log ON (--stages)" if args.stages else ""),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_bench_args(__doc__, argv)
    sizes = args.sizes
    print_header("silver.stop_executions", args)
    work = CACHE / "work-empty"
    results = []
    try:
        shutil.rmtree(work, ignore_errors=True)
        ensure_class_archive(work)
        say("empty Spark job (start-up and shutdown only) ...")
        empty = run_spark(work, work / "lake", 0, ["--seconds", "0"], False, "diagnostics.sleep")
        for size in sizes:
            results.append(bench_size(size, args.stages))
    finally:
        if not args.keep:
            for path in (work, *(CACHE / f"work-{size}" for size in sizes)):
                shutil.rmtree(path, ignore_errors=True)
    return 0 if report(results, empty, args.stages) else 1


def submit_config_summary() -> list[str]:
    config = submit_config()
    words = ["--master", config.master, "--driver-memory", config.driver_memory]
    return words + [f"--conf {k}={v}" for k, v in sorted(config.conf.items())]


def source_version() -> str:
    """Return the commit of the repository, marked dirty if spark_jobs/ has local changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "spark_jobs")
    return git("rev-parse", "--short", "HEAD") + (" + local changes" if dirty else "")


def spark_version() -> str:
    import pyspark

    return pyspark.__version__


if __name__ == "__main__":
    sys.exit(main())
