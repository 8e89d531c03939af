"""Benchmark gold.training_sets.stop_outcome: Spark as production submits it, against DuckDB.

    python -m benchmarks.gold_bench [--sizes 1000000,10000000] [--keep] [--stages]

For each size (bronze events), it:

1. takes the synthetic ``bronze.events`` of :mod:`benchmarks.silver_bench` (generated and
   cached there) and derives, from those events, the other bronze inputs that the gold job
   reads, in the exporter's exact layout and schema (``datalake.bronze.schemas``), cached
   under ``/tmp/gold-bench/input-<version>-<size>/``:

   - ``bronze.orders`` (``client_id=/date=`` partitions, ``id`` order): one to three entry
     orders per operation (a few PARTIALLY_FILLED, limit orders placed long before their
     fill), filled before the operation's first trigger for 97 % of operations and after
     it for the rest (their early samples have no entry fill), cancelled entry orders, the
     exit order of every EXECUTED event and a FAILED order for every FAILED event; fees in
     the quote asset or in BNB;
   - ``bronze.klines`` (``date=`` partitions, ``row_id`` order): one-minute candles of the
     12 symbols from the day before the first event to the last day, a random walk, with
     0.3 % of minutes missing, one 40-minute outage per symbol, a 30-hour outage of ETHBTC
     and LINKUSDC candles starting two days late (null windows on both features);

2. runs the silver full build (``silver.stop_executions --overwrite``, as silver_bench does:
   its time is printed next to the gold job's), then ``gold.training_sets.stop_outcome
   --version v1.0.0 --as-of <the day after the last>`` with the ``spark-submit`` command
   line that Django builds (``datalake.spark.submit.build_command``, default settings, the
   driver's class-data archive);
3. computes the same samples, features, labels and split with DuckDB SQL over the same
   files (silver written by Spark, bronze), writing the same rows in ``split=/date=``
   partitions; the SQL follows the definitions of ``spark_jobs.gold.features.FEATURES``
   (half-open windows ``[t - w, t)``, exact decimals rounded once), not the job's code;
4. compares the two per execution: every feature, label, split, date and sample_id, as
   text at the column's scale (decimals exact).

Prints the figures, then PASS/FAIL per target; exits 1 if a target is missed. ``--keep``
keeps the work lakes under ``/tmp/gold-bench/work-<size>/``; ``--stages`` turns on Spark's
event log and prints the time of each SQL execution and stage of the gold job.
"""

import json
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from benchmarks.silver_bench import (
    CACHE as SILVER_CACHE,
)
from benchmarks.silver_bench import (
    DAY_US,
    DAYS,
    DUCKDB_MEMORY,
    GENERATOR_VERSION,
    START,
    START_US,
    STEP,
    SYMBOLS,
    UNITS,
    SparkRun,
    choices,
    count_files,
    decimals,
    duckdb_session,
    ensure_class_archive,
    ensure_input,
    link_tree,
    machine,
    parse_bench_args,
    print_header,
    run_spark,
    say,
    ticks,
    uuid5_text,
    uuid_strings,
    write_bronze,
)
from datalake.bronze.schemas import KLINES, ORDERS

CACHE = Path("/tmp/gold-bench")
INPUT_VERSION = f"v1-{GENERATOR_VERSION}"  # cache key: this generator's and the events'
SEED = 20250102

JOB = "gold.training_sets.stop_outcome"
VERSION = "v1.0.0"
AS_OF = START + timedelta(days=DAYS)  # the first instant after the base lake's last day
# Mirrored from spark_jobs.gold.training_sets (the bench does not import pyspark code).
SAMPLE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "robson:gold.training_sets")
TEST_FRACTION = 0.2
EMBARGO_SECONDS = 3600
SLIPPAGE_BREACH_PCT = 10

RATIO_MAX = 3.0  # Spark job time (start-up excluded) / DuckDB time, at every size
GROWTH_MAX = 1.5  # job-time growth / size growth between the smallest and largest size

MINUTE_US = 60 * 10**6
KLINE_FROM_US = START_US - DAY_US  # the 24-hour window of the first samples
BNB_UNITS = 650 * UNITS  # BNB price for the fees paid in BNB


# -- Synthetic bronze.orders and bronze.klines ---------------------------------------------


def unscaled(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Return the unscaled values of a decimal128 column (below 2**63) as int64."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    words = np.frombuffer(array.buffers()[1], dtype=np.int64)
    return words[2 * array.offset : 2 * (array.offset + len(array)) : 2].copy()


def micros(column: pa.ChunkedArray) -> np.ndarray:
    return pc.cast(column, pa.int64()).to_numpy()


def timestamps(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None else ~valid
    return pa.array(values, pa.int64(), mask=mask).cast(pa.timestamp("us", tz="UTC"))


def read_events(source: Path) -> pa.Table:
    files = sorted(str(p) for p in (source / "base" / "bronze" / "events").rglob("*.parquet"))
    columns = ["operation_id", "client_id", "symbol", "side", "stop_price", "quantity",
               "occurred_at", "event_type", "fill_price"]  # fmt: skip
    return ds.dataset(files, format="parquet").to_table(columns=columns)


def base_asset(symbol: str) -> str:
    for quote in ("USDT", "USDC", "EUR", "BTC"):
        if symbol.endswith(quote):
            return symbol.removesuffix(quote)
    raise ValueError(symbol)


def make_orders(events: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Return bronze.orders rows for the operations of ``events``, in ``id`` order."""
    op = events["operation_id"].to_numpy()
    at = micros(events["occurred_at"])
    order = np.lexsort((at, op))
    ops, first = np.unique(op[order], return_index=True)
    head = order[first]  # each operation's first event
    n_ops = len(ops)
    symbols = tuple(s for s, _ in SYMBOLS)
    symbol_index = {s: i for i, s in enumerate(symbols)}
    sym = np.array([symbol_index[s] for s in events["symbol"].take(head).to_pylist()])
    client = events["client_id"].to_numpy()[head]
    close_sell = pc.equal(events["side"].take(head), "SELL").to_numpy(zero_copy_only=False)
    stop = unscaled(events["stop_price"].take(head))
    qty = unscaled(events["quantity"].take(head))
    first_at = at[head]
    margin = rng.random(n_ops) < 0.2

    # Entry orders: the first fills before the first trigger for 97 % of operations.
    n_entries = rng.choice(3, n_ops, p=[0.80, 0.15, 0.05]) + 1
    late = rng.random(n_ops) < 0.03
    first_fill = np.where(
        late,
        first_at + rng.integers(10**6, 6 * 3600 * 10**6, n_ops),
        first_at - rng.integers(60 * 10**6, 2 * DAY_US, n_ops),
    )
    away = rng.uniform(0.003, 0.06, n_ops)
    entry_price = ticks(stop * np.where(close_sell, 1 + away, 1 - away))
    e_op = np.repeat(np.arange(n_ops), n_entries)
    nth = np.arange(len(e_op)) - np.repeat(np.cumsum(n_entries) - n_entries, n_entries)
    m = len(e_op)
    e_filled = first_fill[e_op] + np.where(nth > 0, rng.integers(30 * 10**6, DAY_US, m), 0)
    e_price = np.where(
        nth > 0, ticks(entry_price[e_op] * rng.uniform(0.996, 1.004, m)), entry_price[e_op]
    )
    scale_in = np.maximum(STEP, qty[e_op] * rng.uniform(0.3, 0.7, m) // STEP * STEP)
    e_qty = np.where(nth > 0, scale_in, qty[e_op]).astype(np.int64)
    limit = rng.random(m) < 0.2
    e_created = e_filled - np.where(
        limit, rng.integers(30 * 10**6, 3 * 3600 * 10**6, m), rng.integers(20_000, 2 * 10**6, m)
    )
    e_status = np.where(rng.random(m) < 0.08, 1, 0)  # PARTIALLY_FILLED, FILLED

    # Cancelled entry orders (a price, no fill): never a fill.
    cancelled = np.flatnonzero(rng.random(n_ops) < 0.06)
    c = len(cancelled)
    c_created = first_fill[cancelled] - rng.integers(60 * 10**6, DAY_US, c)

    # Exit orders: the stop's order of every EXECUTED event, a FAILED one per FAILED event.
    kind = events["event_type"].to_numpy(zero_copy_only=False)
    exits = np.flatnonzero((kind == "EXECUTED") | (kind == "FAILED"))
    x_op = np.searchsorted(ops, op[exits])
    x_filled = kind[exits] == "EXECUTED"
    x_at = at[exits]
    x_price = unscaled(events["fill_price"].take(pa.array(exits)))

    # All orders, in the order they were recorded (created_at): the cursor ``id``.
    o_op = np.concatenate([e_op, cancelled, x_op])
    created = np.concatenate(
        [e_created, c_created, x_at - rng.integers(30_000, 1_500_000, len(exits))]
    )
    executed = np.concatenate([e_filled, np.zeros(c, np.int64), x_at])
    has_executed = np.concatenate([np.ones(m, bool), np.zeros(c, bool), x_filled])
    price = np.concatenate([e_price, entry_price[cancelled], np.where(x_filled, x_price, 0)])
    has_price = np.concatenate([np.ones(m + c, bool), x_filled])
    quantity = np.concatenate([e_qty, qty[cancelled], qty[x_op]])
    status = np.concatenate([e_status, np.full(c, 2), np.where(x_filled, 0, 3)])
    selling = np.concatenate([~close_sell[e_op], ~close_sell[cancelled], close_sell[x_op]])
    exit_ = np.concatenate([np.zeros(m + c, bool), np.ones(len(exits), bool)])
    recorded = np.argsort(created, kind="stable")
    (o_op, created, executed, has_executed, price, has_price, quantity, status, selling,
     exit_) = (a[recorded] for a in (o_op, created, executed, has_executed, price, has_price,
                                     quantity, status, selling, exit_))  # fmt: skip
    n = len(o_op)
    ids = np.arange(1, n + 1, dtype=np.int64)

    quote = np.where(has_price, price.astype(float) * quantity.astype(float) / UNITS, 0.0)
    bnb = (client[o_op] % 5 == 0) & has_price
    fee = np.where(bnb, quote * 0.00075 * UNITS / BNB_UNITS, quote / 1000)
    fee_units = np.round(fee).astype(np.int64)
    side_text = choices(("BUY", "SELL"), selling.astype(np.int8))
    types = choices(
        ("SPOT_BUY", "SPOT_SELL", "MARGIN_BUY", "MARGIN_SELL"),
        selling.astype(np.int8) + 2 * margin[o_op],
    )
    statuses = choices(("FILLED", "PARTIALLY_FILLED", "CANCELLED", "FAILED"), status)
    symbol_text = choices(symbols, sym[o_op])
    raw = pc.binary_join_element_wise(
        '{"symbol": "', symbol_text, '", "orderId": ',
        pc.cast(pa.array(ids * 7 + 3_000_000_000), pa.string()),
        ', "status": "', statuses, '", "type": "',
        choices(("MARKET", "LIMIT", "STOP_LOSS"), np.where(exit_, 2, 0)),
        '", "side": "', side_text, '"}', "",
    )  # fmt: skip
    columns = {
        "id": pa.array(ids),
        "transaction_id": uuid_strings(rng, n),
        "client_id": pa.array(client[o_op]),
        "related_operation_id": pa.array(ops[o_op]),
        "strategy_id": pa.nulls(n, pa.int64()),  # not exported today
        "transaction_type": types,
        "status": statuses,
        "symbol": symbol_text,
        "asset": choices(tuple(base_asset(s) for s in symbols), sym[o_op]),
        "quantity": decimals(quantity, ORDERS.schema.field("quantity").type),
        "price": decimals(price, ORDERS.schema.field("price").type, has_price),
        "total_value": decimals(np.round(quote).astype(np.int64),
                                ORDERS.schema.field("total_value").type, has_price),
        "fee": decimals(fee_units, ORDERS.schema.field("fee").type),
        "fee_asset": pc.if_else(pa.array(bnb), "BNB", None),
        "side": side_text,
        "leverage": pa.array(np.where(margin[o_op], 3, 0).astype(np.int32), mask=~margin[o_op]),
        "account_type": choices(("SPOT", "MARGIN"), margin[o_op].astype(np.int8)),
        "category": choices(("trade", "stop_loss"), exit_.astype(np.int8)),
        "description": choices(("Entry", "Stop exit"), exit_.astype(np.int8)),
        "raw_response": raw,
        "created_at": timestamps(created),
        "executed_at": timestamps(executed, has_executed),
        "source": choices(("robson",), np.zeros(n, np.int8)),
    }  # fmt: skip
    return pa.table(columns).cast(ORDERS.schema)


def make_klines(rng: np.random.Generator) -> pa.Table:
    """Return one-minute bronze.klines of every symbol, in ``row_id`` order."""
    minutes = (DAYS + 1) * 1440
    k = len(SYMBOLS)
    nominal = np.array([p for _, p in SYMBOLS])
    tick = 10 ** np.maximum(0, np.floor(np.log10(nominal)) + 3).astype(np.int64)  # units
    regime = np.repeat(rng.uniform(0.5, 2.0, (k, minutes // 240 + 1)), 240, axis=1)[:, :minutes]
    steps = rng.standard_normal((k, minutes)) * 0.0006 * regime
    close_f = nominal[:, None] * UNITS * np.exp(np.cumsum(steps, axis=1))
    close = np.maximum(tick[:, None], (close_f // tick[:, None]) * tick[:, None]).astype(np.int64)
    open_ = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
    wick = (np.abs(rng.standard_normal((2, k, minutes))) * 3 + 1).astype(np.int64) * tick[:, None]
    high = np.maximum(open_, close) + wick[0]
    low = np.maximum(tick[:, None], np.minimum(open_, close) - wick[1])
    average = (open_ + high + low + close) // 4
    daily = rng.uniform(2e6, 8e8, k)  # quote volume per day
    quote = (daily[:, None] / 1440 * rng.lognormal(0, 0.6, (k, minutes)) * UNITS).astype(np.int64)
    volume = np.maximum(STEP, (quote.astype(float) * UNITS / average // STEP * STEP)).astype(
        np.int64
    )
    trades = np.maximum(1, quote // (600 * UNITS)).astype(np.int64)
    share = rng.uniform(0.3, 0.7, (k, minutes))
    taker_base = (volume * share // STEP * STEP).astype(np.int64)
    taker_quote = (quote * share).astype(np.int64)

    keep = rng.random((k, minutes)) >= 0.003
    for s in range(k):
        outage = rng.integers(0, minutes - 40)
        keep[s, outage : outage + 40] = False
    names = [s for s, _ in SYMBOLS]
    eth_btc, link = names.index("ETHBTC"), names.index("LINKUSDC")
    keep[eth_btc, 20 * 1440 : 20 * 1440 + 30 * 60] = False
    keep[link, : 3 * 1440] = False  # from START + 2 days on

    # Row order: minute by minute, the symbols of each minute (as a sync would insert them).
    minute, symbol = np.nonzero(keep.T)
    n = len(minute)
    open_time = KLINE_FROM_US + minute.astype(np.int64) * MINUTE_US

    def pick(values: np.ndarray) -> np.ndarray:
        return values[symbol, minute]

    money = KLINES.schema.field("close").type
    columns = {
        "row_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "symbol": choices(tuple(names), symbol),
        "interval": choices(("1m",), np.zeros(n, np.int8)),
        "open_time": timestamps(open_time),
        "open": decimals(pick(open_), money),
        "high": decimals(pick(high), money),
        "low": decimals(pick(low), money),
        "close": decimals(pick(close), money),
        "volume": decimals(pick(volume), money),
        "close_time": timestamps(open_time + MINUTE_US - 1000),
        "quote_asset_volume": decimals(pick(quote), money),
        "number_of_trades": pa.array(pick(trades)),
        "taker_buy_base_asset_volume": decimals(pick(taker_base), money),
        "taker_buy_quote_asset_volume": decimals(pick(taker_quote), money),
    }
    return pa.table(columns).cast(KLINES.schema)


def ensure_gold_input(size: int, events_source: Path) -> tuple[Path, dict[str, Any]]:
    """Return the cached bronze.orders and bronze.klines of ``size`` (made on first use)."""
    directory = CACHE / f"input-{INPUT_VERSION}-{size}"
    info_path = directory / "info.json"
    if info_path.exists():
        say(f"{size:,}: cached gold input {directory}")
        return directory, json.loads(info_path.read_text())
    shutil.rmtree(directory, ignore_errors=True)
    say(f"{size:,}: generating bronze.orders and bronze.klines under {directory} ...")
    started = time.perf_counter()
    rng = np.random.default_rng(SEED + size)
    orders = make_orders(read_events(events_source), rng)
    write_bronze(directory, ORDERS, orders, 1)
    klines = make_klines(rng)
    write_bronze(directory, KLINES, klines, 1)
    info = {
        "orders": orders.num_rows,
        "order_files": count_files(directory / "bronze" / "orders"),
        "klines": klines.num_rows,
        "kline_files": count_files(directory / "bronze" / "klines"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    info_path.write_text(json.dumps(info, indent=2))  # written last: marks the cache complete
    say(f"{size:,}: generated in {info['seconds']:.1f} s: {info}")
    return directory, info


# -- DuckDB reference ----------------------------------------------------------------------


def features_sql(lake: Path) -> str:
    """Return the samples of stop_outcome with their features and label inputs, in DuckDB.

    Written from the definitions in ``spark_jobs.gold.features.FEATURES``, not from the
    job's code: windows are half-open ``[t - w, t)``; the 24-hour volume and the failure
    run are read from running totals by ASOF joins (the last row strictly before an
    instant), the 15-minute closes from the last 16 candles before ``t``; decimals are
    computed exactly in HUGEINT units and rounded once, half up.
    """
    last_date = AS_OF.date().isoformat()
    as_of = AS_OF.isoformat()

    def files(dataset: str, partitions: str) -> str:
        # The job reads the partitions dated up to --as-of's date (list_inputs).
        return (
            f"(SELECT * FROM read_parquet('{lake}/{dataset}/{partitions}/*.parquet',"
            f" hive_partitioning = true) WHERE date <= DATE '{last_date}')"
        )

    def units(column: str) -> str:  # a decimal(20, 8) as its unscaled HUGEINT
        return f"CAST({column} * 100000000 AS HUGEINT)"

    final = "('EXECUTED', 'FAILED', 'BLOCKED')"
    return f"""
    WITH executions AS (
        SELECT * FROM {files("silver/stop_executions", "client_id=*/date=*")}
    ), samples AS (
        SELECT execution_id AS sample_key, client_id, symbol, operation_id, stop_price,
               triggered_at AS t, resolved_at, status, slippage_pct, executed_at,
               source_event_ids
        FROM executions
        WHERE status IN {final} AND triggered_at IS NOT NULL AND resolved_at IS NOT NULL
          AND resolved_at < TIMESTAMPTZ '{as_of}'
    ), fills AS (  -- order ids are unique in the generated bronze: no dedup needed
        SELECT related_operation_id AS operation_id, id,
               coalesce(side, CASE WHEN transaction_type LIKE '%\\_BUY' ESCAPE '\\' THEN 'BUY'
                                   WHEN transaction_type LIKE '%\\_SELL' ESCAPE '\\' THEN 'SELL'
                              END) AS side,
               price, quantity, coalesce(executed_at, created_at) AS filled_at, created_at
        FROM {files("bronze/orders", "client_id=*/date=*")}
        WHERE status IN ('FILLED', 'PARTIALLY_FILLED') AND quantity > 0
          AND price IS NOT NULL AND related_operation_id IS NOT NULL
    ), known AS (  -- the operation's fills filled before t
        SELECT s.sample_key, s.stop_price, s.t, f.*
        FROM samples s JOIN fills f ON f.operation_id = s.operation_id AND f.filled_at < s.t
    ), entry_side AS (  -- the side of the first of them
        SELECT sample_key, arg_min(side, (filled_at, id)) AS side FROM known GROUP BY 1
    ), entry AS (
        SELECT k.sample_key,
               sum({units("price")} * {units("quantity")}) AS notional,  -- 1e-16 units
               sum({units("quantity")}) AS qty,
               any_value({units("stop_price")}) AS stop,
               min(created_at) AS entry_time, any_value(t) AS t
        FROM known k JOIN entry_side e ON e.sample_key = k.sample_key AND e.side = k.side
        GROUP BY 1
    ), entry_features AS (
        -- |N/Q - S| / (N/Q) * 100 = |N - S*Q| / N * 100, in units of 1e-4, half up
        SELECT sample_key,
               CAST(CAST((2 * abs(notional - stop * qty) * 1000000 + notional)
                         // (2 * notional) AS DECIMAL(18, 0)) * 0.0001 AS DECIMAL(10, 4))
                   AS stop_distance_pct,
               CAST((epoch_us(t) - epoch_us(entry_time)) // 1000000 AS INTEGER)
                   AS time_to_trigger_sec
        FROM entry
    ), candles AS (
        SELECT symbol, close_time,
               list(close_time) OVER last16 AS times,
               list(close) OVER last16 AS closes,
               sum(quote_asset_volume) OVER running AS volume_before,
               count(*) OVER running AS candles_before
        FROM {files("bronze/klines", "date=*")}
        WHERE interval = '1m'
        WINDOW last16 AS (PARTITION BY symbol ORDER BY close_time
                          ROWS BETWEEN 15 PRECEDING AND CURRENT ROW),
               running AS (PARTITION BY symbol ORDER BY close_time ROWS UNBOUNDED PRECEDING)
    ), at_t AS (  -- the last candle before t, and the last one before t - 24 h
        SELECT s.sample_key, s.t,
               list_filter(c.closes, lambda x, i: c.times[i] >= s.t - INTERVAL 15 MINUTE)
                   AS closes,
               coalesce(c.volume_before, 0) - coalesce(d.volume_before, 0) AS volume,
               coalesce(c.candles_before, 0) - coalesce(d.candles_before, 0) AS candles
        FROM samples s
        ASOF LEFT JOIN candles c ON c.symbol = s.symbol AND s.t > c.close_time
        ASOF LEFT JOIN candles d
            ON d.symbol = s.symbol AND s.t - INTERVAL 24 HOUR > d.close_time
    ), returns AS (
        SELECT sample_key, volume, candles,
               list_transform(range(1, len(closes)),
                              lambda i: ln(closes[i + 1]::DOUBLE / closes[i]::DOUBLE)) AS r
        FROM at_t
    ), mean AS (
        SELECT *, len(r) AS n, list_sum(r) / len(r) AS m FROM returns
    ), market_features AS (
        SELECT sample_key,
               CASE WHEN n >= 2 THEN CAST(round(sqrt(
                   list_sum(list_transform(r, lambda x: (x - m) * (x - m))) / (n - 1)), 6)
                   AS DECIMAL(10, 6)) END AS volatility_15m,
               CASE WHEN candles > 0 THEN CAST(volume AS DECIMAL(20, 8)) END AS volume_24h
        FROM mean
    ), resolved AS (  -- per client and instant: resolutions, and whether one did not fail
        SELECT client_id, resolved_at, count(*) AS n, bool_or(status <> 'FAILED') AS ok
        FROM executions WHERE status IN {final} AND resolved_at IS NOT NULL
        GROUP BY 1, 2
    ), counted AS (
        SELECT *, sum(n) OVER (PARTITION BY client_id ORDER BY resolved_at) AS c FROM resolved
    ), marked AS (
        -- c: resolutions up to this instant; l: c at the last instant with a non-failure
        -- (at one instant a failure counts as before a success)
        SELECT client_id, resolved_at, c,
               coalesce(max(CASE WHEN ok THEN c END)
                        OVER (PARTITION BY client_id ORDER BY resolved_at), 0) AS l
        FROM counted
    ), failure_features AS (
        SELECT s.sample_key,
               CAST(coalesce(e.c, 0) - greatest(coalesce(e.l, 0), coalesce(b.c, 0)) AS INTEGER)
                   AS consecutive_failures_1h
        FROM samples s
        ASOF LEFT JOIN marked e ON e.client_id = s.client_id AND s.t > e.resolved_at
        ASOF LEFT JOIN marked b
            ON b.client_id = s.client_id AND s.t - INTERVAL 1 HOUR > b.resolved_at
    )
    SELECT s.*, e.stop_distance_pct, e.time_to_trigger_sec, m.volatility_15m, m.volume_24h,
           CAST(hour(s.t) AS INTEGER) AS hour_of_day,
           CAST(isodow(s.t) - 1 AS INTEGER) AS day_of_week,
           f.consecutive_failures_1h
    FROM samples s
    LEFT JOIN entry_features e USING (sample_key)
    LEFT JOIN market_features m USING (sample_key)
    LEFT JOIN failure_features f USING (sample_key)
    """


def samples_sql(start: str) -> str:
    """Return the published rows from table ``featured`` with the test split at ``start``."""
    cutoff = f"TIMESTAMPTZ '{start}' - INTERVAL {EMBARGO_SECONDS} SECOND"
    key = f"'{VERSION}/' || sample_key"
    digest = f"sha1(unhex('{SAMPLE_NAMESPACE.hex}') || encode({key}))"
    return f"""
    SELECT {uuid5_text("_h")} AS sample_id, client_id, symbol,
           {{'stop_distance_pct': stop_distance_pct, 'time_to_trigger_sec': time_to_trigger_sec,
             'volatility_15m': volatility_15m, 'volume_24h': volume_24h,
             'hour_of_day': hour_of_day, 'day_of_week': day_of_week,
             'consecutive_failures_1h': consecutive_failures_1h}} AS features,
           {{'execution_success': status = 'EXECUTED',
             'slippage_breach': CASE WHEN slippage_pct IS NOT NULL
                                     THEN abs(slippage_pct) > {SLIPPAGE_BREACH_PCT} END,
             'execution_time_sec': CASE WHEN status = 'EXECUTED'
                                        THEN (epoch_us(executed_at) - epoch_us(t)) / 1e6 END
           }} AS label,
           {{'version': '{VERSION}', 'generated_at': TIMESTAMPTZ '{AS_OF.isoformat()}',
             'source_event_ids': source_event_ids, 'execution_id': sample_key,
             'trigger_time': t, 'label_resolved_at': resolved_at}} AS metadata,
           CASE WHEN t < TIMESTAMPTZ '{start}' THEN 'train' ELSE 'test' END AS split,
           CAST(t AS DATE) AS date
    FROM (SELECT *, {digest} AS _h FROM featured)
    WHERE NOT (t < TIMESTAMPTZ '{start}' AND resolved_at >= {cutoff})
    ORDER BY split, date, sample_id
    """


@dataclass
class DuckRun:
    seconds: float
    cpu: float
    candidates: int
    without_entry: int
    published: int
    test_start: str


def run_duckdb(lake: Path, out: Path) -> DuckRun:
    """Build stop_outcome of ``lake`` with DuckDB into ``out`` (``split=/date=`` files)."""
    cpu = time.process_time()
    started = time.perf_counter()
    con = duckdb_session(out)
    con.execute(f"CREATE TEMP TABLE featured AS {features_sql(lake)}")
    candidates, with_entry = con.execute(
        "SELECT count(*), count(stop_distance_pct) FROM featured"
    ).fetchone()
    # The test split starts at the trigger time ranked (1 - fraction) among the samples
    # with an entry fill (spark_jobs.gold.training_sets.test_start).
    rank = min(int(with_entry * (1 - TEST_FRACTION)), with_entry - 1)
    (start_us,) = con.execute(
        "SELECT epoch_us(t) FROM featured WHERE stop_distance_pct IS NOT NULL"
        f" ORDER BY t OFFSET {rank} LIMIT 1"
    ).fetchone()
    start = (START + timedelta(microseconds=start_us - START_US)).isoformat()
    con.execute("DELETE FROM featured WHERE stop_distance_pct IS NULL")
    con.execute(
        f"COPY ({samples_sql(start)}) TO '{out}'"
        " (FORMAT parquet, PARTITION_BY (split, date), COMPRESSION zstd)"
    )
    (published,) = con.execute(
        f"SELECT count(*) FROM read_parquet('{out}/*/*/*.parquet')"
    ).fetchone()
    con.close()
    return DuckRun(
        time.perf_counter() - started, time.process_time() - cpu, candidates,
        candidates - with_entry, published, start,
    )  # fmt: skip


# -- Comparison ----------------------------------------------------------------------------

FEATURES = ("stop_distance_pct", "time_to_trigger_sec", "volatility_15m", "volume_24h",
            "hour_of_day", "day_of_week", "consecutive_failures_1h")  # fmt: skip
LABELS = ("execution_success", "slippage_breach", "execution_time_sec")
COMPARED = {
    **{f"features.{n}": f"features.{n}" for n in FEATURES},
    **{f"label.{n}": f"label.{n}" for n in LABELS},
    "sample_id": "sample_id",
    "client_id": "client_id",
    "symbol": "symbol",
    "split": "split",
    "date": "date",
    "trigger_time": "metadata.trigger_time",
    "label_resolved_at": "metadata.label_resolved_at",
    "source_event_ids": "metadata.source_event_ids",
}


@dataclass
class Comparison:
    spark_rows: int
    duck_rows: int
    only_spark: int
    only_duck: int
    differing: dict[str, int]  # column -> rows whose values differ (as text)
    examples: dict[str, str]  # column -> "execution_id: spark value | duckdb value"

    @property
    def identical(self) -> bool:
        return (
            self.spark_rows == self.duck_rows
            and self.only_spark == self.only_duck == 0
            and not any(self.differing.values())
        )


def compare(spark_version_dir: Path, duck_out: Path) -> Comparison:
    """Compare the published rows of the two engines per execution_id, column by column."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
    text = ", ".join(f'CAST({expr} AS VARCHAR) AS "{name}"' for name, expr in COMPARED.items())
    con.execute(
        f"CREATE TEMP TABLE s AS SELECT metadata.execution_id AS k, {text} FROM ("
        " SELECT *, regexp_extract(filename, '/(train|test)/date=', 1) AS split"
        f" FROM read_parquet('{spark_version_dir}/*/date=*/*.parquet',"
        " hive_partitioning = true, filename = true))"
    )
    con.execute(
        f"CREATE TEMP TABLE d AS SELECT metadata.execution_id AS k, {text}"
        f" FROM read_parquet('{duck_out}/split=*/date=*/*.parquet', hive_partitioning = true)"
    )
    spark_rows = con.execute("SELECT count(*) FROM s").fetchone()[0]
    duck_rows = con.execute("SELECT count(*) FROM d").fetchone()[0]
    only_spark = con.execute("SELECT count(*) FROM s ANTI JOIN d USING (k)").fetchone()[0]
    only_duck = con.execute("SELECT count(*) FROM d ANTI JOIN s USING (k)").fetchone()[0]
    differing, examples = {}, {}
    for name in COMPARED:
        column = f'"{name}"'
        count, example = con.execute(
            f"SELECT count(*), min(s.k || ': ' || coalesce(s.{column}, 'null') || ' | '"
            f" || coalesce(d.{column}, 'null'))"
            f" FROM s JOIN d USING (k) WHERE s.{column} IS DISTINCT FROM d.{column}"
        ).fetchone()
        differing[name] = int(count)
        if count:
            examples[name] = str(example)
    con.close()
    return Comparison(spark_rows, duck_rows, only_spark, only_duck, differing, examples)


# -- One size ------------------------------------------------------------------------------


@dataclass
class SizeResult:
    size: int
    events: dict[str, Any]
    inputs: dict[str, Any]
    silver: SparkRun
    gold: SparkRun
    document: dict[str, Any]  # the published features.json
    duck: DuckRun
    comparison: Comparison

    @property
    def ratio(self) -> float:
        """Spark's job time (wall, start-up excluded) over DuckDB's wall time."""
        return self.gold.job / self.duck.seconds


def bench_size(size: int, stages: bool) -> SizeResult:
    source, events = ensure_input(size)
    gold_source, inputs = ensure_gold_input(size, source)
    work = CACHE / f"work-{size}"
    shutil.rmtree(work, ignore_errors=True)
    lake = work / "lake"
    link_tree(source / "base", lake)
    link_tree(gold_source, lake)
    (lake / "info.json").unlink(missing_ok=True)

    say(f"{size:,}: Spark silver full build ...")
    silver = run_spark(work, lake, 1, ["--overwrite"], False)
    say(f"{size:,}: silver full build: {silver.wall:.1f} s wall")

    say(f"{size:,}: Spark {JOB} ...")
    args = ["--version", VERSION, "--as-of", AS_OF.isoformat()]
    gold = run_spark(work, lake, 2, args, stages, job=JOB)
    say(f"{size:,}: gold: {gold.wall:.1f} s wall, {gold.seconds}")
    published = lake / "gold" / "training_sets" / "stop_outcome" / VERSION
    document = json.loads((published / "features.json").read_text())

    say(f"{size:,}: DuckDB reference ...")
    duck_out = work / "duckdb" / "stop_outcome"
    duck = run_duckdb(lake, duck_out)
    say(f"{size:,}: DuckDB: {duck.seconds:.1f} s, CPU {duck.cpu:.1f} s")
    comparison = compare(published, duck_out)
    return SizeResult(size, events, inputs, silver, gold, document, duck, comparison)


# -- Report --------------------------------------------------------------------------------


def show_gold(run: SparkRun) -> list[str]:
    s = run.seconds
    launch = run.wall - s["total"]
    phases = ", ".join(
        f"{name} {s[name]:.1f}"
        for name in ("inputs", "features", "recheck", "write", "checks", "publish")
        if name in s
    )
    return [
        f"    wall {run.wall:.1f} s = start-up {run.startup:.1f} s (JVM + Python launch"
        f" {launch:.1f}, SparkSession {s['spark_startup']:.1f}) + job {run.job:.1f} s;"
        f" CPU {run.cpu:.1f} s",
        f"    job phases (s): {phases}",
    ]


def show_comparison(c: Comparison) -> list[str]:
    verdict = "identical" if c.identical else "DIFFER"
    lines = [
        f"  Spark vs DuckDB: {verdict}: Spark {c.spark_rows:,} rows, DuckDB {c.duck_rows:,};"
        f" only in Spark {c.only_spark:,}, only in DuckDB {c.only_duck:,}"
    ]
    bad = {name: n for name, n in c.differing.items() if n}
    lines.append(
        "    differing rows per column: "
        + (", ".join(f"{name} {n:,}" for name, n in bad.items()) if bad else "none")
    )
    lines += [f"    e.g. {name}: {c.examples[name]}" for name in bad]
    return lines


def growth(results: list[SizeResult]) -> tuple[float, float, float] | None:
    """Return (size factor, Spark job-time factor, DuckDB factor), smallest to largest."""
    if len(results) < 2:
        return None
    small, large = results[0], results[-1]
    return (
        large.size / small.size,
        large.gold.job / small.gold.job,
        large.duck.seconds / small.duck.seconds,
    )


def report(results: list[SizeResult], stages: bool) -> bool:
    """Print the figures and the targets; return whether every target is met."""
    print(f"spark-submit command (gold):\n  {' '.join(results[0].gold.command)}")
    for r in results:
        d, split = r.document, r.document["split"]
        rows = d["rows"]
        print(
            f"\n== {r.size:,} events: bronze {r.events['base_events']:,} events,"
            f" {r.inputs['orders']:,} orders ({r.inputs['order_files']} files),"
            f" {r.inputs['klines']:,} klines ({r.inputs['kline_files']} files)"
        )
        print(
            f"  silver full build (run 1, log {r.silver.log}): wall {r.silver.wall:.1f} s"
            f" (start-up {r.silver.startup:.1f} s, job {r.silver.job:.1f} s),"
            f" {sum(r.silver.result['outputs'].values()):,} executions"
        )
        print(f"  {JOB} (run 2, log {r.gold.log}):")
        print("\n".join(show_gold(r.gold)))
        print(
            f"    candidates {sum(r.gold.result['inputs'].values()):,}, without an entry fill"
            f" {split['excluded_without_entry_fill']:,}, purged {split['purged']:,};"
            f" published train {rows['train']:,}, test {rows['test']:,};"
            f" test start {split['test_start']}"
        )
        failed = [c for c in r.gold.result.get("checks", []) if not c["passed"]]
        if failed:
            shown = "; ".join(f"{c['check']} {c['partition']} ({c['observed']})" for c in failed)
            print(f"    checks not passed (warnings): {shown}")
        print(
            f"  DuckDB reference: wall {r.duck.seconds:.1f} s, CPU {r.duck.cpu:.1f} s;"
            f" candidates {r.duck.candidates:,}, without an entry fill {r.duck.without_entry:,},"
            f" published {r.duck.published:,}, test start {r.duck.test_start}"
        )
        print("\n".join(show_comparison(r.comparison)))
        if stages:
            print("  Spark event log, gold job:")
            print("\n".join(f"    {line}" for line in r.gold.stages))

    print(
        "\n| events | Spark gold job | start-up | silver full build | DuckDB | Spark ÷ DuckDB |"
        "\n|---:|---:|---:|---:|---:|---:|"
    )
    for r in results:
        print(
            f"| {r.size:,} | {r.gold.job:.1f} s | {r.gold.startup:.1f} s |"
            f" {r.silver.wall:.1f} s | {r.duck.seconds:.1f} s | {r.ratio:.1f}x |"
        )
    factors = growth(results)
    if factors:
        sizes, spark, duck = factors
        print(
            f"growth {results[0].size:,} → {results[-1].size:,} events ({sizes:g}x):"
            f" Spark gold job {spark:.1f}x, DuckDB {duck:.1f}x"
        )

    ok = True
    print("\ntargets:")
    for r in results:
        same = r.comparison.identical
        ok &= same
        print(f"  {'PASS' if same else 'FAIL'}  {r.size:,}: Spark and DuckDB rows identical")
    for r in results:
        passed = r.ratio <= RATIO_MAX
        ok &= passed
        print(
            f"  {'PASS' if passed else 'FAIL'}  {r.size:,}: Spark job / DuckDB {r.ratio:.1f}x"
            f" (target <= {RATIO_MAX:g}x)"
        )
    if factors:
        sizes, spark, _ = factors
        passed = spark <= GROWTH_MAX * sizes
        ok &= passed
        print(
            f"  {'PASS' if passed else 'FAIL'}  Spark job time grows {spark:.1f}x for {sizes:g}x"
            f" the events (target <= {GROWTH_MAX * sizes:g}x: not quadratic)"
        )
    print(f"at the end: {machine()}")
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_bench_args(__doc__, argv)
    sizes = args.sizes
    print_header(JOB, args, cached=f"; inputs cached under {SILVER_CACHE} and {CACHE}")
    warm_up = CACHE / "work-warm-up"
    results = []
    try:
        shutil.rmtree(warm_up, ignore_errors=True)
        ensure_class_archive(warm_up)
        for size in sizes:
            results.append(bench_size(size, args.stages))
    finally:
        shutil.rmtree(warm_up, ignore_errors=True)
        if not args.keep:
            for size in sizes:
                shutil.rmtree(CACHE / f"work-{size}", ignore_errors=True)
    return 0 if report(results, args.stages) else 1


if __name__ == "__main__":
    sys.exit(main())
