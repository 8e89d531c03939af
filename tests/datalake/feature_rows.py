"""Write online feature partitions as the refresh job does (for tests without Spark)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = "gold/features/stop_execution_features"
SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("as_of", pa.timestamp("us", tz="UTC")),
        ("computed_at", pa.timestamp("us", tz="UTC")),
        ("operation_id", pa.int64()),
        ("stop_price", pa.decimal128(20, 8)),
        ("stop_distance_pct", pa.decimal128(10, 4)),
        ("time_to_trigger_sec", pa.int32()),
        ("volatility_15m", pa.decimal128(10, 6)),
        ("volume_24h", pa.decimal128(20, 8)),
        ("hour_of_day", pa.int32()),
        ("day_of_week", pa.int32()),
        ("consecutive_failures_1h", pa.int32()),
        ("feature_version", pa.string()),
        ("refresh_run_id", pa.int64()),
    ]
)


def row(symbol: str, as_of: datetime, run: int, distance: str = "2.5000", **values) -> dict:
    return {
        "symbol": symbol,
        "as_of": as_of,
        "computed_at": as_of,
        "operation_id": 7,
        "stop_price": Decimal("95000.00000000"),
        "stop_distance_pct": Decimal(distance),
        "time_to_trigger_sec": 3600,
        "volatility_15m": None,
        "volume_24h": Decimal("1234.50000000"),
        "hour_of_day": as_of.hour,
        "day_of_week": as_of.weekday(),
        "consecutive_failures_1h": 0,
        "feature_version": "sha256:test",
        "refresh_run_id": run,
        **values,
    }


def write_partition(lake: Path, client_id: int, day: str, rows: list[dict]) -> str:
    """Write one client's date partition; return its lake key (the directory)."""
    key = f"{ROOT}/client_id={client_id}/date={day}"
    directory = lake / key
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, SCHEMA), directory / "part-00000.parquet")
    return key
