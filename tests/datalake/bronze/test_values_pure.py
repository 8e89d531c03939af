"""Pure pieces of reading source values: COPY text decoding and values bronze cannot hold."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
import pytest

from datalake.bronze.contracts import REASON_COLUMN, check
from datalake.bronze.exporter import split_by_partition
from datalake.bronze.schemas import EVENTS, MONEY, ORDERS, SLIPPAGE, TIMESTAMP
from datalake.bronze.source import (
    copy_unescape,
    decimal_from_text,
    decimal_text,
    epoch_us_from_text,
    row_schema,
    timestamp_from_text,
    value_from_text,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("plain", "plain"),
        ("line\\none", "line\none"),
        ("crlf\\r\\nnext", "crlf\r\nnext"),
        ("tab\\there", "tab\there"),
        ("back\\\\slash", "back\\slash"),
        ("\\\\N", "\\N"),  # a text that reads \N is not NULL
        ("\\\\n", "\\n"),  # a backslash then n, not a newline
        ("\\b\\f\\v", "\b\f\v"),
        ("\\x", "x"),  # COPY FROM's rule: any other escaped character is itself
        ('"quoted", with commas', '"quoted", with commas'),
        ("émoji 🚀", "émoji 🚀"),
    ],
)
def test_copy_unescape(field, value):
    assert copy_unescape(field) == value


@pytest.mark.parametrize(
    ("text", "dtype", "value", "reason"),
    [
        ("95123.12345678", MONEY, Decimal("95123.12345678"), None),
        ("-0.1234", SLIPPAGE, Decimal("-0.1234"), None),
        ("0", MONEY, Decimal("0"), None),
        ("999999999999.99999999", MONEY, Decimal("999999999999.99999999"), None),
        ("1.1234567800", MONEY, Decimal("1.12345678"), None),  # zeros past the scale: exact
        ("0001.5", MONEY, Decimal("1.5"), None),
        (None, MONEY, None, None),
        ("NaN", MONEY, None, "fill_price: 'NaN' is not a decimal(20,8)"),
        ("Infinity", MONEY, None, "fill_price: 'Infinity' is not a decimal(20,8)"),
        ("-Infinity", MONEY, None, "fill_price: '-Infinity' is not a decimal(20,8)"),
        ("1.123456789", MONEY, None, "fill_price: '1.123456789' is not a decimal(20,8)"),
        ("1000000000000", MONEY, None, "fill_price: '1000000000000' is not a decimal(20,8)"),
        ("1234567.5", SLIPPAGE, None, "fill_price: '1234567.5' is not a decimal(10,4)"),
        ("1.0e-05", MONEY, None, "fill_price: '1.0e-05' is not a decimal(20,8)"),
        ("", MONEY, None, "fill_price: '' is not a decimal(20,8)"),
        ("abc", MONEY, None, "fill_price: 'abc' is not a decimal(20,8)"),
        (".", MONEY, None, "fill_price: '.' is not a decimal(20,8)"),
    ],
)
def test_decimal_from_text(text, dtype, value, reason):
    values, reasons = decimal_from_text(pa.array([text, "1.5"], pa.string()), dtype, "fill_price")
    assert values.type == dtype
    assert values.to_pylist() == [value, Decimal("1.5")]
    assert reasons.to_pylist() == [reason, None]


@pytest.mark.parametrize(
    ("stored", "text"),
    [
        (None, None),
        ("95123.12345678", "95123.12345678"),
        (95123.12345678, "95123.12345678"),  # SQLite REAL
        ("1.0e-05", "0.000010"),  # SQLite's text of a small REAL
        (5, "5"),
        ("NaN", "NaN"),  # left as it is, for the reason
        ("Inf", "Inf"),
        ("not a number", "not a number"),
    ],
)
def test_decimal_text(stored, text):
    assert decimal_text(stored) == text


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2024-12-27 23:58:00", datetime(2024, 12, 27, 23, 58, tzinfo=UTC)),
        ("2024-12-27 23:58:00.000123", datetime(2024, 12, 27, 23, 58, 0, 123, tzinfo=UTC)),
        (
            "2024-12-28 01:58:00+02:00",
            datetime(2024, 12, 27, 23, 58, tzinfo=timezone(timedelta(0))),
        ),
    ],
)
def test_timestamp_from_text(text, moment):
    value = timestamp_from_text(text)
    assert value == moment
    assert value.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["not a date", "2024-13-01 00:00:00", ""])
def test_timestamp_from_text_rejects(text):
    with pytest.raises(ValueError):
        timestamp_from_text(text)


def test_epoch_us_from_text_rejects_infinity():
    values, reasons = epoch_us_from_text(
        pa.array(["1735343880000000", "infinity", None]), TIMESTAMP, "occurred_at"
    )
    assert values.to_pylist() == [datetime(2024, 12, 27, 23, 58, tzinfo=UTC), None, None]
    assert reasons.to_pylist() == [
        None,
        "occurred_at: 'infinity' is not a timestamp[us, UTC]",
        None,
    ]


def test_value_from_text_rejects_one_value_at_a_time():
    values, reasons = value_from_text(pa.array(["3", "x", "3000000000"]), pa.int32(), "retry")
    assert values.to_pylist() == [3, None, None]
    assert reasons.to_pylist() == [
        None,
        "retry: 'x' is not a int32",
        "retry: '3000000000' is not a int32",
    ]


def test_check_keeps_the_readers_reason_first():
    row = {name: None for name in EVENTS.schema.names}
    good = dict(
        row,
        event_id="e",
        event_seq=1,
        occurred_at=datetime(2024, 12, 27, tzinfo=UTC),
        operation_id=1,
        client_id=1,
        symbol="BTCUSDC",
        event_type="EXECUTED",
        source="ws",
    )
    bad = dict(good, event_seq=2, quantity=None, event_type="NOPE")
    bad[REASON_COLUMN] = "quantity: 'NaN' is not a decimal(20,8)"
    table = pa.Table.from_pylist([dict(good, **{REASON_COLUMN: None}), bad], row_schema(EVENTS))
    kept, rejected = check(EVENTS, table)
    assert kept.column_names == EVENTS.schema.names
    assert kept["event_seq"].to_pylist() == [1]
    assert rejected[REASON_COLUMN].to_pylist() == ["quantity: 'NaN' is not a decimal(20,8)"]


def test_a_row_without_partition_values_is_split_to_unknown():
    """A quarantined row may have lost its partition value; it must not stop the batch."""
    empty = {name: None for name in ORDERS.schema.names}
    moment = datetime(2024, 12, 27, tzinfo=UTC)
    table = pa.Table.from_pylist(
        [
            dict(empty, id=1, client_id=None, created_at=moment),
            dict(empty, id=2, client_id=3, created_at=None),
            dict(empty, id=3, client_id=3, created_at=moment),
        ],
        ORDERS.schema,
    )
    parts = [(key, part["id"].to_pylist()) for key, part in split_by_partition(ORDERS, table)]
    assert parts == [
        ("client_id=3/date=2024-12-27", [3]),
        ("client_id=3/date=unknown", [2]),
        ("client_id=unknown/date=2024-12-27", [1]),
    ]
