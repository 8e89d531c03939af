"""Read source rows for a bronze dataset as Arrow tables.

The ORM builds the query (model, fields, filters, cursor) from configuration; on
PostgreSQL the rows travel by COPY ... TO STDOUT as CSV parsed by pyarrow with the
dataset's exact types (no Python object per value), elsewhere by a plain iterator.
"""

import io
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import F, Model, Q, QuerySet

from datalake.bronze.ranges import Range
from datalake.bronze.schemas import Dataset, get_dataset
from datalake.conf import app_settings

ITERATOR_CHUNK = 10_000


@dataclass(frozen=True)
class Source:
    """A bronze dataset bound to the model and fields that feed it."""

    dataset: Dataset
    model: type[Model]
    fields: dict[str, str]  # bronze column -> model field path
    include: dict[str, list[Any]]

    @property
    def cursor_field(self) -> str:
        return self.fields[self.dataset.cursor]

    @property
    def time_field(self) -> str:
        return self.fields[self.dataset.time_column]

    def queryset(self) -> QuerySet:
        return self.model._default_manager.all()


def get_source(name: str) -> Source:
    """Return the configured source of bronze dataset `name`."""
    dataset = get_dataset(name)
    config = app_settings.SOURCES.get(name)
    if not config or "model" not in config:
        raise ImproperlyConfigured(f"DATALAKE_SOURCES has no model for dataset {name!r}")
    try:
        model = apps.get_model(config["model"])
    except (LookupError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"DATALAKE_SOURCES[{name!r}]: unknown model {config['model']!r}"
        ) from exc
    fields = {column: column for column, _ in dataset.columns}
    fields.update(config.get("fields", {}))
    return Source(dataset, model, fields, dict(config.get("include", {})))


def _select(source: Source, where: Q, limit: int | None) -> QuerySet:
    columns = source.dataset.columns
    aliases = {f"c{i}": F(source.fields[name]) for i, (name, _) in enumerate(columns)}
    qs = (
        source.queryset()
        .filter(where)
        .annotate(**aliases)
        .order_by(source.cursor_field)
        .values_list(*aliases)
    )
    return qs[:limit] if limit else qs


def read(source: Source, where: Q, limit: int | None = None) -> pa.Table:
    """Return the rows matching `where`, ordered by cursor, as a table of the full schema."""
    qs = _select(source, where, limit)
    if connection.vendor == "postgresql":
        return _read_copy(source, qs)
    return _read_iterator(source, qs)


def rows_after(source: Source, after: int, limit: int) -> pa.Table:
    return read(source, Q(**{f"{source.cursor_field}__gt": after}), limit)


def rows_in(source: Source, ranges: list[Range]) -> pa.Table:
    """Return the rows whose cursor value lies in one of `ranges`."""
    if not ranges:
        return empty_table(source.dataset.schema)
    where = Q()
    for lo, hi in ranges:
        where |= Q(**{f"{source.cursor_field}__range": (lo, hi)})
    return read(source, where)


# -- PostgreSQL: COPY as CSV, parsed by pyarrow -------------------------------------------


class _CopyStream(io.RawIOBase):
    """A read-only file over the chunks of a psycopg COPY TO STDOUT (no extra copies)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _csv_type(dtype: pa.DataType) -> pa.DataType:
    return pa.int64() if pa.types.is_timestamp(dtype) else dtype


def _read_copy(source: Source, qs: QuerySet) -> pa.Table:
    import psycopg

    sql, params = qs.query.sql_with_params()
    outer = []
    for i, (_, dtype) in enumerate(source.dataset.columns):
        if pa.types.is_timestamp(dtype):
            # Epoch microseconds: exact, and free of text time-zone parsing.
            outer.append(f"(EXTRACT(EPOCH FROM c{i}) * 1000000)::bigint")
        else:
            outer.append(f"c{i}")
    raw = connection.connection
    inner = psycopg.ClientCursor(raw).mogrify(sql, params)
    copy_sql = f"COPY (SELECT {', '.join(outer)} FROM ({inner}) AS q) TO STDOUT (FORMAT csv)"
    names = [f"c{i}" for i in range(len(source.dataset.columns))]
    convert = pacsv.ConvertOptions(
        column_types={
            n: _csv_type(t) for n, (_, t) in zip(names, source.dataset.columns, strict=True)
        },
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        null_values=[""],
        true_values=["t"],
        false_values=["f"],
    )
    with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
        chunks = iter(copy)
        first = next(chunks, None)
        if first is None:
            return empty_table(source.dataset.schema)
        stream = io.BufferedReader(
            _CopyStream(itertools.chain([first], chunks)), buffer_size=1 << 20
        )
        # Stream block by block: the CSV text never sits in memory whole.
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(column_names=names, block_size=4 << 20),
            convert_options=convert,
        )
        table = pa.Table.from_batches(list(reader), schema=reader.schema)
    columns = [
        table[n].cast(t) if pa.types.is_timestamp(t) else table[n]
        for n, (_, t) in zip(names, source.dataset.columns, strict=True)
    ]
    return pa.Table.from_arrays(columns, schema=source.dataset.schema)


# -- Other databases: the ORM iterator --------------------------------------------------


def _python_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return value


def _read_iterator(source: Source, qs: QuerySet) -> pa.Table:
    schema = source.dataset.schema
    names = [f"c{i}" for i in range(len(schema))]
    json_columns = {i for i, f in enumerate(schema) if f.name in source.dataset.json_columns}
    batches = []
    rows: list[tuple] = []

    def flush() -> None:
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
        arrays = []
        for i, (values, field) in enumerate(zip(columns, schema, strict=True)):
            if i in json_columns or field.type == pa.string():
                values = [_python_value(v) for v in values]
            arrays.append(pa.array(values, type=field.type))
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
        rows.clear()

    for row in qs.iterator(chunk_size=ITERATOR_CHUNK):
        rows.append(row)
        if len(rows) >= ITERATOR_CHUNK:
            flush()
    flush()
    return pa.Table.from_batches(batches, schema=schema)


def empty_table(schema: pa.Schema) -> pa.Table:
    """Return an empty table (Schema.empty_table imports pandas; this does not)."""
    return pa.Table.from_batches([], schema=schema)


def partition_date(table: pa.Table, column: str) -> pa.Array:
    """Return the UTC date of each row's timestamp in `column`."""
    return pc.cast(table[column], pa.date32())


def first_cursor_at_or_after(source: Source, moment: datetime) -> int | None:
    """Return the smallest cursor value of a row at or after `moment` (for --since)."""
    return (
        source.queryset()
        .filter(**{f"{source.time_field}__gte": moment})
        .order_by(source.cursor_field)
        .values_list(source.cursor_field, flat=True)
        .first()
    )
