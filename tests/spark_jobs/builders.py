"""Small bronze rows for Spark tests: defaults for everything, override what matters."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from spark_jobs.common.bronze import EVENTS, KLINES, ORDERS, PORTFOLIO

_seq = itertools.count(1)


def ts(text: str) -> datetime:
    """Return the UTC datetime of ``"2024-12-27 10:00:00"``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def utc(text: str) -> datetime:
    """Return ``"2024-12-27 10:00:00"`` as collected from Spark: naive, UTC wall clock."""
    return datetime.fromisoformat(text)


def dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def event(
    token: str,
    event_type: str,
    at: str,
    *,
    seq: int | None = None,
    event_id: str | None = None,
    operation_id: int = 100,
    client_id: int = 1,
    symbol: str = "BTCUSDC",
    side: str = "SELL",
    fill_price: str | None = None,
    slippage_pct: str | None = None,
    exchange_order_id: str | None = None,
    error_message: str | None = None,
    retry_count: int = 0,
    source: str = "ws",
    strategy_id: int | None = 7,
) -> dict[str, Any]:
    """Return one bronze.events row (trigger 95000, stop 95100, quantity 0.5)."""
    occurred = ts(at)
    seq = next(_seq) if seq is None else seq
    payload = "{}" if strategy_id is None else f'{{"strategy_id": {strategy_id}}}'
    return {
        "event_id": event_id or str(uuid.uuid5(uuid.NAMESPACE_OID, f"{token}/{seq}")),
        "event_seq": seq,
        "occurred_at": occurred,
        "operation_id": operation_id,
        "client_id": client_id,
        "symbol": symbol,
        "event_type": event_type,
        "trigger_price": Decimal("95000.00000000"),
        "stop_price": Decimal("95100.00000000"),
        "quantity": Decimal("0.50000000"),
        "side": side,
        "execution_token": token,
        "payload_json": payload,
        "exchange_order_id": exchange_order_id,
        "fill_price": dec(fill_price),
        "slippage_pct": dec(slippage_pct),
        "source": source,
        "error_message": error_message,
        "retry_count": retry_count,
        "date": occurred.date(),
    }


def events_frame(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    """Return bronze.events rows as a DataFrame with the exact bronze types."""
    return spark.createDataFrame([_ordered(r, EVENTS.fieldNames()) for r in rows], EVENTS)


def order(
    op: int,
    side: str,
    qty: str,
    price: str | None,
    at: str,
    *,
    id: int | None = None,
    client_id: int = 1,
    status: str = "FILLED",
    fee: str = "0",
    fee_asset: str | None = "USDC",
    symbol: str = "BTCUSDC",
    asset: str = "BTC",
    transaction_type: str | None = None,
    strategy_id: int | None = None,
    raw_response: str = "{}",
) -> dict[str, Any]:
    """Return one bronze.orders row (an audit transaction of an order type)."""
    created = ts(at)
    quantity, unit = Decimal(qty), dec(price)
    row_id = next(_seq) if id is None else id
    return {
        "id": row_id,
        "transaction_id": f"tx-{row_id}",
        "related_operation_id": op,
        "transaction_type": transaction_type or f"SPOT_{side}",
        "status": status,
        "symbol": symbol,
        "asset": asset,
        "quantity": quantity,
        "price": unit,
        "total_value": None if unit is None else (quantity * unit).quantize(Decimal("1e-8")),
        "fee": Decimal(fee),
        "fee_asset": fee_asset,
        "side": side,
        "leverage": None,
        "account_type": "SPOT",
        "category": "trade",
        "description": "",
        "raw_response": raw_response,
        "created_at": created,
        "executed_at": created if status == "FILLED" else None,
        "source": "robson",
        "strategy_id": strategy_id,
        "client_id": client_id,
        "date": created.date(),
    }


def orders_frame(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    return spark.createDataFrame([_ordered(r, ORDERS.fieldNames()) for r in rows], ORDERS)


def snapshot(
    client_id: int, at: str, total: str, *, id: int | None = None, cash: str = "0"
) -> dict[str, Any]:
    """Return one bronze.portfolio row."""
    when = ts(at)
    return {
        "id": next(_seq) if id is None else id,
        "timestamp": when,
        "quote_asset": "USDC",
        "total_value": Decimal(total),
        "cash": Decimal(cash),
        "balances": "{}",
        "client_id": client_id,
        "date": when.date(),
    }


def portfolio_frame(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    return spark.createDataFrame([_ordered(r, PORTFOLIO.fieldNames()) for r in rows], PORTFOLIO)


def kline(
    open_at: str,
    close: str,
    *,
    quote_volume: str = "10",
    symbol: str = "BTCUSDC",
    close_time: datetime | None = None,
    row_id: int | None = None,
) -> dict[str, Any]:
    """Return one bronze.klines row: a one-minute candle opening at ``open_at`` (UTC)
    and closing 59.999 s later unless ``close_time`` says otherwise."""
    opened = ts(open_at)
    price = Decimal(close)
    return {
        "symbol": symbol,
        "interval": "1m",
        "open_time": opened,
        "close_time": close_time or opened + timedelta(seconds=59, milliseconds=999),
        "open": price,
        "high": price,
        "low": price,
        "close": price,
        "volume": Decimal("1"),
        "quote_asset_volume": Decimal(quote_volume),
        "taker_buy_base_asset_volume": Decimal("0.5"),
        "taker_buy_quote_asset_volume": Decimal(quote_volume) / 2,
        "number_of_trades": 10,
        "row_id": next(_seq) if row_id is None else row_id,
        "date": opened.date(),
    }


def klines_frame(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    return spark.createDataFrame([_ordered(r, KLINES.fieldNames()) for r in rows], KLINES)


def _ordered(row: dict[str, Any], names: list[str]) -> tuple[Any, ...]:
    return tuple(row[n] for n in names)


def day(text: str) -> date:
    return date.fromisoformat(text)


# --- bronze on disk, as the exporter writes it -------------------------------------------


def _arrow_type(spark_type: str) -> Any:
    import pyarrow as pa

    return {
        "string": pa.string(),
        "bigint": pa.int64(),
        "int": pa.int32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "decimal(20,8)": pa.decimal128(20, 8),
        "decimal(10,4)": pa.decimal128(10, 4),
        "date": pa.date32(),
        "boolean": pa.bool_(),
    }[spark_type]


def write_bronze(
    lake: Path, dataset: str, rows: list[dict[str, Any]], name: str = "part-00000001-0000"
) -> list[Path]:
    """Write ``rows`` under ``lake/bronze/<dataset>/`` like the exporter: one file per
    partition directory, plus a ``_metadata/`` manifest next to it. Return the files."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = {"events": EVENTS, "orders": ORDERS, "portfolio": PORTFOLIO, "klines": KLINES}[dataset]
    partition_by = ["date"] if dataset in ("events", "klines") else ["client_id", "date"]
    columns = [f for f in schema.fields if f.name not in partition_by]
    # Optional columns the exporter does not write (yet).
    columns = [f for f in columns if not (dataset == "orders" and f.name == "strategy_id")]
    arrow = pa.schema([(f.name, _arrow_type(f.dataType.simpleString())) for f in columns])
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = "/".join(f"{c}={row[c]}" for c in partition_by)
        groups.setdefault(key, []).append(row)
    written = []
    for key, group in groups.items():
        directory = lake / "bronze" / dataset / key
        (directory / "_metadata").mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist([{f.name: r[f.name] for f in columns} for r in group], arrow)
        path = directory / f"{name}.parquet"
        pq.write_table(table, path)
        (directory / "_metadata" / f"{name}.json").write_text(json.dumps({"rows": len(group)}))
        written.append(path)
    return written
