"""Read the lake back the way an independent reader would, for assertions."""

import io
import json
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

from datalake.bronze.source import get_source
from datalake.storage.base import Storage


def visible_parquet_keys(storage: Storage, prefix: str) -> list[str]:
    """Return the Parquet keys a reader lists (names starting with . or _ are hidden)."""
    keys = []
    for info in storage.list(prefix):
        parts = info.key.split("/")
        if info.key.endswith(".parquet") and not any(p.startswith((".", "_")) for p in parts):
            keys.append(info.key)
    return keys


def read_lake(storage: Storage, prefix: str) -> pa.Table | None:
    """Read every visible Parquet file under `prefix`, adding hive partition columns."""
    tables = []
    for key in visible_parquet_keys(storage, prefix):
        table = pq.read_table(io.BytesIO(storage.get_bytes(key)))
        for part in key.split("/")[:-1]:
            if "=" in part:
                name, value = part.split("=", 1)
                if name not in table.column_names:
                    value = int(value) if name.endswith("_id") else value
                    table = table.append_column(name, pa.array([value] * table.num_rows))
        tables.append(table)
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")


def normalize(value):
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def source_rows(name: str) -> list[dict]:
    """Return the source rows of dataset `name` as bronze would hold them, by cursor."""
    source = get_source(name)
    columns = [c for c, _ in source.dataset.columns]
    qs = source.queryset()
    for column, allowed in source.include.items():
        qs = qs.filter(**{f"{source.fields[column]}__in": allowed})
    rows = []
    for values in qs.order_by(source.cursor_field).values_list(
        *[source.fields[c] for c in columns]
    ):
        rows.append({c: normalize(v) for c, v in zip(columns, values, strict=True)})
    return rows


def bronze_rows(storage: Storage, name: str) -> list[dict]:
    """Return bronze rows of dataset `name` by cursor, JSON columns parsed."""
    source = get_source(name)
    table = read_lake(storage, f"bronze/{name}/")
    if table is None:
        return []
    columns = [c for c, _ in source.dataset.columns]
    rows = table.select(columns).sort_by(source.dataset.cursor).to_pylist()
    for row in rows:
        for column in source.dataset.json_columns:
            if row[column] is not None:
                row[column] = json.loads(row[column])
    return rows
