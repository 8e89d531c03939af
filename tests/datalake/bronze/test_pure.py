"""Pure pieces of bronze: ranges, contracts, partitioning, schemas (no database)."""

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from datalake.bronze import ranges
from datalake.bronze.contracts import REASON_COLUMN, check
from datalake.bronze.exporter import manifest_key, partition_keys, split_by_partition
from datalake.bronze.schemas import DATASETS, EVENTS, KLINES, ORDERS, get_dataset

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], []),
        ([5], [[5, 5]]),
        ([1, 2, 3], [[1, 3]]),
        ([3, 1, 2, 2], [[1, 3]]),
        ([1, 2, 4, 5, 9], [[1, 2], [4, 5], [9, 9]]),
        ([10, 12, 14], [[10, 10], [12, 12], [14, 14]]),
    ],
)
def test_to_ranges(values, expected):
    assert ranges.to_ranges(values) == expected


@pytest.mark.parametrize(
    ("after", "upto", "present", "expected"),
    [
        (0, 0, [], []),
        (0, 5, [1, 2, 3, 4, 5], []),
        (0, 5, [1, 2, 4, 5], [[3, 3]]),
        (0, 5, [5], [[1, 4]]),
        (10, 20, [11, 15, 20], [[12, 14], [16, 19]]),
        (10, 12, [3, 11, 99], [[12, 12]]),  # values outside the window are ignored
        (5, 3, [], []),
    ],
)
def test_missing(after, upto, present, expected):
    assert ranges.missing(after, upto, present) == expected


@pytest.mark.parametrize(
    ("gaps", "values", "expected"),
    [
        ([[3, 3]], [3], []),
        ([[3, 7]], [5], [[3, 4], [6, 7]]),
        ([[3, 7], [10, 10]], [3, 10], [[4, 7]]),
        ([[3, 7]], [], [[3, 7]]),
    ],
)
def test_subtract(gaps, values, expected):
    assert ranges.subtract(gaps, values) == expected
    assert ranges.count(expected) == ranges.count(gaps) - len(
        [v for v in values if any(lo <= v <= hi for lo, hi in gaps)]
    )


def event_rows(**overrides) -> list[dict]:
    base = {name: None for name, _ in EVENTS.columns}
    base.update(
        event_id="e",
        occurred_at=datetime(2024, 12, 27, 23, 59, 59, tzinfo=UTC),
        operation_id=1,
        client_id=1,
        symbol="BTCUSDC",
        event_type="EXECUTED",
        source="ws",
        quantity=Decimal("0.5"),
        retry_count=0,
    )
    rows = []
    for seq, changes in enumerate(overrides.get("rows", [{}]), start=1):
        rows.append({**base, "event_seq": seq, **changes})
    return rows


def table_of(dataset, rows) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=dataset.schema)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({}, None),
        ({"symbol": "btc-usd"}, "symbol: does not match"),
        ({"symbol": None}, "symbol: required, is null"),
        ({"event_type": "EXPLODED"}, "event_type: not one of"),
        ({"side": "HOLD"}, "side: not one of"),
        ({"side": "SELL"}, None),
        ({"source": "email"}, "source: not one of"),
        ({"quantity": Decimal("-1")}, "quantity: negative"),
        ({"fill_price": Decimal("-0.00000001")}, "fill_price: negative"),
        ({"retry_count": -1}, "retry_count: negative"),
        ({"occurred_at": None}, "occurred_at: required, is null"),
        ({"client_id": None, "symbol": "bad"}, "client_id: required"),  # first rule wins
    ],
)
def test_event_contract(change, reason):
    rows = event_rows(rows=[{}, change, {}])
    good, rejected = check(EVENTS, table_of(EVENTS, rows))
    assert good.num_rows + rejected.num_rows == 3
    if reason is None:
        assert rejected.num_rows == 0
        assert good.column("event_seq").to_pylist() == [1, 2, 3]
    else:
        assert good.column("event_seq").to_pylist() == [1, 3]
        assert rejected.column("event_seq").to_pylist() == [2]
        assert rejected.column(REASON_COLUMN)[0].as_py().startswith(reason)


def test_orders_contract_rejects_non_order_types():
    row = {name: None for name, _ in ORDERS.columns}
    row.update(
        id=1,
        transaction_id="t",
        client_id=1,
        transaction_type="DEPOSIT",
        status="FILLED",
        symbol="ETHUSDC",
        quantity=Decimal(1),
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    good, rejected = check(ORDERS, table_of(ORDERS, [row]))
    assert good.num_rows == 0
    assert rejected.column(REASON_COLUMN)[0].as_py().startswith("transaction_type")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({}, None),
        ({"interval": "5m"}, "interval: not one of 1m"),
        ({"symbol": "btc/usdc"}, "symbol: does not match"),
        ({"close": None}, "close: required, is null"),
        ({"volume": Decimal("-0.00000001")}, "volume: negative"),
        ({"number_of_trades": -3}, "number_of_trades: negative"),
        ({"taker_buy_base_asset_volume": None}, None),
    ],
)
def test_klines_contract(change, reason):
    base = {
        "symbol": "ETHUSDC",
        "interval": "1m",
        "open_time": datetime(2024, 12, 27, 23, 59, tzinfo=UTC),
        "close_time": datetime(2024, 12, 27, 23, 59, 59, 999_999, tzinfo=UTC),
        **{name: Decimal("3400.5") for name in ("open", "high", "low", "close")},
        "volume": Decimal("2"),
        "quote_asset_volume": Decimal("6801"),
        "number_of_trades": 12,
        "taker_buy_base_asset_volume": Decimal("1"),
        "taker_buy_quote_asset_volume": Decimal("3400.5"),
    }
    rows = [{**base, "row_id": 1}, {**base, "row_id": 2, **change}]
    good, rejected = check(KLINES, table_of(KLINES, rows))
    assert good.column("row_id").to_pylist() == ([1, 2] if reason is None else [1])
    if reason is not None:
        assert rejected.column(REASON_COLUMN)[0].as_py().startswith(reason)


def test_klines_are_partitioned_by_the_utc_date_of_open_time():
    assert KLINES.time_column == "open_time"
    assert KLINES.partition_by == ()
    assert KLINES.cursor == "row_id"
    assert KLINES.file_schema.field("open").type == pa.decimal128(20, 8)
    assert KLINES.file_schema.field("number_of_trades").type == pa.int64()


def test_partitioning_uses_utc_date_and_tenant():
    rows = [
        {"client_id": 2, "created_at": datetime(2024, 12, 27, 23, 59, 59, 999999, tzinfo=UTC)},
        {"client_id": 2, "created_at": datetime(2024, 12, 28, 0, 0, tzinfo=UTC)},
        {"client_id": 10, "created_at": datetime(2024, 12, 28, 0, 0, tzinfo=UTC)},
    ]
    full = [{**{n: None for n, _ in ORDERS.columns}, "id": i, **r} for i, r in enumerate(rows)]
    table = table_of(ORDERS, full)
    assert partition_keys(ORDERS, table).to_pylist() == [
        "client_id=2/date=2024-12-27",
        "client_id=2/date=2024-12-28",
        "client_id=10/date=2024-12-28",
    ]
    parts = split_by_partition(ORDERS, table)
    assert [key for key, _ in parts] == [
        "client_id=10/date=2024-12-28",
        "client_id=2/date=2024-12-27",
        "client_id=2/date=2024-12-28",
    ]
    assert sum(part.num_rows for _, part in parts) == 3


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            "bronze/events/date=2024-12-27/part-00000001-0000.parquet",
            "bronze/events/date=2024-12-27/_metadata/part-00000001-0000.json",
        ),
        (
            "quarantine/orders/client_id=1/date=2024-12-27/part-00000009-0002.parquet",
            "quarantine/orders/client_id=1/date=2024-12-27/_metadata/part-00000009-0002.json",
        ),
    ],
)
def test_manifest_key(key, expected):
    assert manifest_key(key) == expected


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_schema_types_are_exact(name):
    dataset = get_dataset(name)
    schema = dataset.schema
    for field in schema:
        assert not pa.types.is_floating(field.type), f"{name}.{field.name} is a float"
        if pa.types.is_timestamp(field.type):
            assert (field.type.unit, field.type.tz) == ("us", "UTC")
    assert dataset.cursor in schema.names
    assert dataset.time_column in schema.names
    assert set(dataset.partition_by) <= set(schema.names)
    assert not set(dataset.partition_by) & set(dataset.file_schema.names)


def test_money_is_decimal_20_8():
    assert EVENTS.schema.field("fill_price").type == pa.decimal128(20, 8)
    assert EVENTS.schema.field("slippage_pct").type == pa.decimal128(10, 4)


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(KeyError, match="known: events, klines, orders, portfolio, trades"):
        get_dataset("fills")
