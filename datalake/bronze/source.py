"""Read source rows for a bronze dataset as Arrow tables.

The ORM builds the query (model, fields, filters, cursor) from configuration; on
PostgreSQL the rows travel by COPY ... TO STDOUT in text format, parsed by pyarrow with
the dataset's exact types (no Python object per value), elsewhere by a plain iterator.

Every value the database can store reaches the table: text byte for byte, JSON as the
database's own text. A value that the bronze type cannot hold exactly (a NaN or
too-long decimal, an infinite timestamp) becomes null, and the row's `_reject_reason`
names the column and the value, so that the contract check sends the row to quarantine.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import F, Model, Q, QuerySet, TextField
from django.db.models.functions import Cast

from datalake.bronze.contracts import REASON_COLUMN
from datalake.bronze.ranges import Range
from datalake.bronze.schemas import Dataset, get_dataset
from datalake.conf import app_settings

ITERATOR_CHUNK = 10_000
# COPY rows are gathered into segments of about this size, each parsed on its own; a
# segment always ends at a row's end, and holds at least one row however long.
COPY_SEGMENT_BYTES = 8 << 20
PARSE_BLOCK_BYTES = 1 << 20


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


def row_schema(dataset: Dataset) -> pa.Schema:
    """Return the schema of the tables `read` returns: the dataset's, then `_reject_reason`."""
    return dataset.schema.append(pa.field(REASON_COLUMN, pa.string()))


def _select(source: Source, where: Q, limit: int | None, *, as_text: bool = False) -> QuerySet:
    """Return the query of the dataset's columns as c0, c1, ... in cursor order.

    With `as_text`, decimal, timestamp, JSON and UUID columns are selected as the
    database's own text, so that no ORM converter (which raises on a NaN, an
    unquantizable decimal or a malformed date, and re-serialises JSON) sees the value.
    """
    columns = source.dataset.columns
    aliases = {f"c{i}": F(source.fields[name]) for i, (name, _) in enumerate(columns)}
    qs = source.queryset().filter(where)
    if as_text:
        resolved = qs.annotate(**aliases).query.annotations
        for i, (name, dtype) in enumerate(columns):
            alias = f"c{i}"
            internal = resolved[alias].output_field.get_internal_type()
            if (
                pa.types.is_decimal(dtype)
                or pa.types.is_timestamp(dtype)
                or name in source.dataset.json_columns
                or internal == "UUIDField"
            ):
                aliases[alias] = Cast(F(source.fields[name]), TextField())
    qs = qs.annotate(**aliases).order_by(source.cursor_field).values_list(*aliases)
    return qs[:limit] if limit else qs


def read(source: Source, where: Q, limit: int | None = None) -> pa.Table:
    """Return the rows matching `where`, ordered by cursor, as a table of `row_schema`."""
    if connection.vendor == "postgresql":
        return _read_copy(source, _select(source, where, limit))
    return _read_iterator(source, _select(source, where, limit, as_text=True))


def rows_after(source: Source, after: int, limit: int) -> pa.Table:
    return read(source, Q(**{f"{source.cursor_field}__gt": after}), limit)


def rows_in(source: Source, ranges: list[Range]) -> pa.Table:
    """Return the rows whose cursor value lies in one of `ranges`."""
    if not ranges:
        return empty_table(row_schema(source.dataset))
    where = Q()
    for lo, hi in ranges:
        where |= Q(**{f"{source.cursor_field}__range": (lo, hi)})
    return read(source, where)


# -- Values that a bronze type may not hold ------------------------------------------------


def type_name(dtype: pa.DataType) -> str:
    """Return the bronze type as a reason names it: decimal(20,8), timestamp[us, UTC]..."""
    if pa.types.is_decimal(dtype):
        return f"decimal({dtype.precision},{dtype.scale})"
    if pa.types.is_timestamp(dtype):
        return f"timestamp[{dtype.unit}, {dtype.tz}]" if dtype.tz else f"timestamp[{dtype.unit}]"
    return str(dtype)


def _with_reasons(
    values: pa.Array, bad: pa.Array, column: str, dtype: pa.DataType
) -> tuple[pa.Array, pa.Array]:
    """Return (`bad` positions nulled, a reason at each `bad` position naming the value)."""
    bad = pc.fill_null(bad, False)
    if not pc.any(bad).as_py():
        return values, pa.nulls(len(values), pa.string())
    texts = [
        f"{column}: {value!r} is not a {type_name(dtype)}"
        for value in pc.filter(values, bad).to_pylist()
    ]
    reasons = pc.replace_with_mask(
        pa.nulls(len(values), pa.string()), bad, pa.array(texts, pa.string())
    )
    return pc.if_else(bad, pa.scalar(None, values.type), values), reasons


def _decimal_pattern(dtype: pa.Decimal128Type) -> str:
    whole = dtype.precision - dtype.scale
    fraction = rf"(\.[0-9]{{1,{dtype.scale}}}0*)?" if dtype.scale else r"(\.0+)?"
    return rf"^[+-]?0*[0-9]{{1,{max(whole, 1)}}}{fraction}$"


def decimal_from_text(
    values: pa.Array, dtype: pa.DataType, column: str
) -> tuple[pa.Array, pa.Array]:
    """Return (decimals of `dtype`, reasons) from plain decimal text such as '95123.5'.

    A value `dtype` cannot hold exactly (NaN, Infinity, more digits than its precision
    or scale, text that is no number) is null, with a reason such as
    `fill_price: 'NaN' is not a decimal(20,8)`.
    """
    ok = pc.match_substring_regex(values, _decimal_pattern(dtype))
    if dtype.precision - dtype.scale < 1:
        ok = pc.and_(ok, pc.match_substring_regex(values, r"^[+-]?0*(\.|$)"))
    values, reasons = _with_reasons(values, pc.invert(ok), column, dtype)
    try:
        return values.cast(dtype), reasons
    except pa.ArrowInvalid:  # a form the pattern let through but Arrow does not read
        values, more = _cast_one_by_one(values, dtype, column)
        return values, pc.coalesce(reasons, more)


def epoch_us_from_text(
    values: pa.Array, dtype: pa.DataType, column: str
) -> tuple[pa.Array, pa.Array]:
    """Return (timestamps, reasons) from epoch microseconds as text; anything else is
    null with a reason (PostgreSQL's 'infinity', a date beyond Arrow's range)."""
    ok = pc.match_substring_regex(values, r"^-?[0-9]{1,19}$")
    values, reasons = _with_reasons(values, pc.invert(ok), column, dtype)
    return values.cast(pa.int64()).cast(dtype), reasons


def value_from_text(values: pa.Array, dtype: pa.DataType, column: str) -> tuple[pa.Array, pa.Array]:
    """Return (values of `dtype`, reasons) from text, one value at a time where needed."""
    if pa.types.is_decimal(dtype):
        return decimal_from_text(values, dtype, column)
    try:
        return values.cast(dtype), pa.nulls(len(values), pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _cast_one_by_one(values, dtype, column)


def _cast_one_by_one(
    values: pa.Array, dtype: pa.DataType, column: str
) -> tuple[pa.Array, pa.Array]:
    """Return (values of `dtype`, reasons), trying each text alone: the slow path."""
    fits = []
    for value in values.to_pylist():
        try:
            pa.array([value], pa.string()).cast(dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            fits.append(False)
        else:
            fits.append(True)
    values, reasons = _with_reasons(values, pc.invert(pa.array(fits, pa.bool_())), column, dtype)
    return values.cast(dtype), reasons


def _first_reasons(reasons: list[pa.Array], length: int) -> pa.Array:
    """Return each row's first non-null reason (a row keeps the first column's reason)."""
    found = [r for r in reasons if r.null_count < len(r)]
    if not found:
        return pa.nulls(length, pa.string())
    return pc.coalesce(*found) if len(found) > 1 else found[0]


# -- PostgreSQL: COPY in text format, parsed by pyarrow ---------------------------------

# COPY's text format writes a backslash before these letters for the control characters
# (and doubles a backslash); nothing else is escaped, so rows are plain lines.
_COPY_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_COPY_UNESCAPE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_COPY_PARSE = pacsv.ParseOptions(
    delimiter="\t",
    quote_char=False,
    double_quote=False,
    escape_char=False,
    newlines_in_values=False,
    ignore_empty_lines=False,
)


def copy_unescape(text: str) -> str:
    """Return a COPY text-format field as the value it stands for."""
    return _COPY_ESCAPE.sub(lambda m: _COPY_UNESCAPE.get(m.group(1), m.group(1)), text)


def _unescape_column(column: pa.Array) -> pa.Array:
    escaped = pc.fill_null(pc.match_substring(column, "\\"), False)
    if not pc.any(escaped).as_py():
        return column
    decoded = [copy_unescape(v) for v in pc.filter(column, escaped).to_pylist()]
    return pc.replace_with_mask(column, escaped, pa.array(decoded, pa.string()))


def _copy_expression(alias: str, dtype: pa.DataType) -> str:
    if pa.types.is_timestamp(dtype):
        # Epoch microseconds: exact, and free of text time-zone parsing. A timestamp
        # that int64 microseconds cannot hold ('infinity', the far future) comes as its
        # text, which the parser then rejects with a reason instead of failing the COPY.
        return (
            f"CASE WHEN {alias} > '-infinity' AND {alias} < '294000-01-01 00:00:00+00'"
            f" THEN ((EXTRACT(EPOCH FROM {alias}) * 1000000)::bigint)::text"
            f" ELSE {alias}::text END"
        )
    return alias


def _copy_wire_type(dtype: pa.DataType) -> pa.DataType:
    return pa.int64() if pa.types.is_timestamp(dtype) else dtype


def _parse_segment(dataset: Dataset, segment: bytes, longest: int) -> pa.RecordBatch:
    """Parse COPY text rows into a batch of `row_schema` (values checked, text decoded)."""
    names = [f"c{i}" for i in range(len(dataset.columns))]
    read_options = pacsv.ReadOptions(
        column_names=names, block_size=max(PARSE_BLOCK_BYTES, 2 * longest + 2)
    )

    def parse(types: dict[str, pa.DataType]) -> pa.Table:
        convert = pacsv.ConvertOptions(
            column_types=types,
            null_values=["\\N"],
            strings_can_be_null=True,
            true_values=["t"],
            false_values=["f"],
        )
        return pacsv.read_csv(
            pa.BufferReader(segment),
            read_options=read_options,
            parse_options=_COPY_PARSE,
            convert_options=convert,
        )

    typed = {n: _copy_wire_type(t) for n, (_, t) in zip(names, dataset.columns, strict=True)}
    reasons: list[pa.Array] = []
    try:
        table = parse(typed)
    except pa.ArrowInvalid:
        # A value the exact type cannot hold: read the typed columns as text, check each.
        # (PostgreSQL writes booleans as t/f only, which the text cast would not know.)
        table = parse({n: t if t == pa.bool_() else pa.string() for n, t in typed.items()})
    columns = []
    for name, (column, dtype) in zip(names, dataset.columns, strict=True):
        values = table[name].combine_chunks()
        if dtype == pa.string():
            values = _unescape_column(values)
        elif values.type == pa.string():
            if pa.types.is_timestamp(dtype):
                values, reason = epoch_us_from_text(values, dtype, column)
            else:
                values, reason = value_from_text(values, dtype, column)
            reasons.append(reason)
        elif pa.types.is_timestamp(dtype):
            values = values.cast(dtype)
        columns.append(values)
    columns.append(_first_reasons(reasons, table.num_rows))
    return pa.RecordBatch.from_arrays(columns, schema=row_schema(dataset))


def _read_copy(source: Source, qs: QuerySet) -> pa.Table:
    import psycopg

    dataset = source.dataset
    sql, params = qs.query.sql_with_params()
    outer = [_copy_expression(f"c{i}", t) for i, (_, t) in enumerate(dataset.columns)]
    raw = connection.connection
    inner = psycopg.ClientCursor(raw).mogrify(sql, params)
    copy_sql = f"COPY (SELECT {', '.join(outer)} FROM ({inner}) AS q) TO STDOUT"
    batches = []
    try:
        # Every call on the connection happens on this thread, and psycopg's Copy ends
        # a COPY left early by an error (cancel, then drain), so the connection is idle
        # again when the error propagates.
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            rows: list[bytes] = []
            size = longest = 0
            for row in copy:
                rows.append(bytes(row))
                size += len(row)
                longest = max(longest, len(row))
                if size >= COPY_SEGMENT_BYTES:
                    batches.append(_parse_segment(dataset, b"".join(rows), longest))
                    rows, size, longest = [], 0, 0
            if rows:
                batches.append(_parse_segment(dataset, b"".join(rows), longest))
    except BaseException:
        if (
            raw.broken
            or raw.closed
            or raw.info.transaction_status == psycopg.pq.TransactionStatus.ACTIVE
        ):
            # The session died, or its COPY could not be ended: drop the connection
            # (the server releases the session's locks), and Django opens a new one
            # for recording the failure.
            connection.close()
        raise
    return pa.Table.from_batches(batches, schema=row_schema(dataset))


# -- Other databases: the ORM iterator, typed values as the database's text -------------


def decimal_text(value: object) -> object:
    """Return a decimal read as text (SQLite writes 1e-05 as '1.0e-05') in plain notation;
    anything that is not a finite number is returned as it is, for the reason."""
    if value is None or isinstance(value, bytes):
        return value
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return value
    return format(number, "f") if number.is_finite() else value


def timestamp_from_text(value: object) -> datetime:
    """Return a stored timestamp text as an aware UTC datetime (naive text is UTC)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _python_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _uuid_text(value: Any) -> Any:
    """Return a UUID stored as 32 hex digits (SQLite) in its usual dashed form."""
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return value
    return _python_value(value)


def _strings_one_by_one(values: list[Any], column: str) -> tuple[pa.Array, pa.Array]:
    """Return (texts, reasons) for a text column holding other types (SQLite stores any
    type in any column): bytes that are UTF-8 and numbers become text, the rest a reason."""
    texts, reasons = [], []
    for value in values:
        reason = None
        if isinstance(value, bytes):
            try:
                value = value.decode()
            except UnicodeDecodeError:
                value, reason = None, f"{column}: {value!r} is not a string"
        elif value is not None and not isinstance(value, str):
            value = str(value)
        texts.append(value)
        reasons.append(reason)
    return pa.array(texts, pa.string()), pa.array(reasons, pa.string())


def _iterator_column(
    values: list[Any], dtype: pa.DataType, column: str, uuid_column: bool
) -> tuple[pa.Array, pa.Array | None]:
    """Return (array of `dtype`, reasons or None) from the values the iterator read."""
    if pa.types.is_decimal(dtype):
        text = pa.array([decimal_text(v) for v in values], pa.string(), from_pandas=False)
        return decimal_from_text(pc.cast(text, pa.string()), dtype, column)
    if pa.types.is_timestamp(dtype):
        moments, bad = [], []
        for value in values:
            try:
                moments.append(None if value is None else timestamp_from_text(value))
                bad.append(False)
            except (TypeError, ValueError, OverflowError):
                moments.append(None)
                bad.append(True)
        text = pa.array([str(v) for v in values], pa.string())
        reasons = _with_reasons(text, pa.array(bad, pa.bool_()), column, dtype)[1]
        return pa.array(moments, dtype), reasons
    if dtype == pa.string():
        convert = _uuid_text if uuid_column else _python_value
        strings = [convert(v) for v in values]
        try:
            return pa.array(strings, dtype), None
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return _strings_one_by_one(strings, column)
    try:
        return pa.array(values, dtype), None
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        text = pa.array([None if v is None else str(v) for v in values], pa.string())
        return value_from_text(text, dtype, column)


def _read_iterator(source: Source, qs: QuerySet) -> pa.Table:
    dataset = source.dataset
    schema = row_schema(dataset)
    uuid_columns = {
        i
        for i in range(len(dataset.columns))
        if isinstance(qs.query.annotations[f"c{i}"], Cast)
        and qs.query.annotations[f"c{i}"].source_expressions[0].output_field.get_internal_type()
        == "UUIDField"
    }
    batches = []
    rows: list[tuple] = []

    def flush() -> None:
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in dataset.columns]
        arrays, reasons = [], []
        for i, (values, (name, dtype)) in enumerate(zip(columns, dataset.columns, strict=True)):
            array, reason = _iterator_column(list(values), dtype, name, i in uuid_columns)
            arrays.append(array)
            if reason is not None:
                reasons.append(reason)
        arrays.append(_first_reasons(reasons, len(rows)))
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
