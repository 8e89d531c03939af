"""Shared pieces of the demo generator: units and helpers, configuration, row layouts."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import models

from api.models import (
    AuditTransaction,
    Client,
    Kline,
    Operation,
    Portfolio,
    StopEvent,
    Strategy,
    Trade,
)

# --- Domain constants -------------------------------------------------------------------

UNITS = 10**8  # money and quantities are integers of 1e-8 until they become Decimal
QUOTE = "USDC"

TRIGGERED = StopEvent.EventType.STOP_TRIGGERED.value
SUBMITTED = StopEvent.EventType.EXECUTION_SUBMITTED.value
EXECUTED = StopEvent.EventType.EXECUTED.value
FAILED = StopEvent.EventType.FAILED.value
BLOCKED = StopEvent.EventType.BLOCKED.value
STALE_PRICE = StopEvent.EventType.STALE_PRICE.value
KILL_SWITCH = StopEvent.EventType.KILL_SWITCH.value
SLIPPAGE_BREACH = StopEvent.EventType.SLIPPAGE_BREACH.value
CIRCUIT_BREAKER = StopEvent.EventType.CIRCUIT_BREAKER.value

#: Which event may follow which within one execution (``None`` is the start).
TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset({TRIGGERED}),
    TRIGGERED: frozenset({SUBMITTED, STALE_PRICE, KILL_SWITCH, CIRCUIT_BREAKER}),
    STALE_PRICE: frozenset({BLOCKED}),
    KILL_SWITCH: frozenset({BLOCKED}),
    CIRCUIT_BREAKER: frozenset({BLOCKED}),
    SUBMITTED: frozenset({EXECUTED, FAILED}),
    FAILED: frozenset({SUBMITTED, CIRCUIT_BREAKER}),
    EXECUTED: frozenset({SLIPPAGE_BREACH}),
    SLIPPAGE_BREACH: frozenset(),
    BLOCKED: frozenset(),
}
#: Events an execution may end with.
TERMINAL_EVENTS = frozenset({EXECUTED, SLIPPAGE_BREACH, FAILED, BLOCKED})
#: Re-submissions after the first attempt; retry_count never exceeds it.
MAX_RETRIES = 3

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_MINUTES = 1440
CHUNK_EVENTS = 8_000  # events per loaded chunk (other tables follow along)
CHUNK_ROWS = 25_000

_ZERO = Decimal(0).scaleb(-8)


_E8 = Decimal("1E-8")


def d8(units: int) -> Decimal:
    """Return ``units`` of 1e-8 as a Decimal with exactly 8 decimal places (exact)."""
    return Decimal(units) * _E8


def s8(units: int) -> str:
    """Return ``units`` of 1e-8 as a Binance-style decimal string ("95123.45000000")."""
    if units < 0:
        return "-%d.%08d" % divmod(-units, UNITS)  # noqa: UP031 (fastest exact form)
    return "%d.%08d" % divmod(units, UNITS)  # noqa: UP031


_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_V4 = (0x4000 << 64) | (0x8000 << 48)
_UUID_UNKNOWN = uuid.SafeUUID.unknown
_new_object = object.__new__
_set_slot = object.__setattr__


def uuid4_from(bits: int) -> uuid.UUID:
    """Return ``uuid.UUID(int=bits, version=4)``, built without the constructor's checks."""
    value = _new_object(uuid.UUID)
    _set_slot(value, "int", (bits & _UUID_CLEAR) | _UUID_V4)
    _set_slot(value, "is_safe", _UUID_UNKNOWN)
    return value


#: Serialise a JSON column's value. Rows carry JSON as text, ready to load, so a payload
#: shared by the events of an execution is encoded once; compact, as the database keeps
#: no formatting anyway.
to_json = json.JSONEncoder(separators=(",", ":")).encode


def _dt(us: int) -> datetime:
    # Exact: below year 2100 the float's error (< 0.25 us) is under the half microsecond
    # that fromtimestamp rounds to, and it is twice as fast as adding a timedelta.
    return _from_timestamp(us / 1e6, UTC)


_from_timestamp = datetime.fromtimestamp


def _round_div(num: int, den: int) -> int:
    """Return num/den rounded half up (den > 0), exactly."""
    q, r = divmod(num, den)
    return q + 1 if 2 * r >= den else q


# --- Configuration ----------------------------------------------------------------------


class DemoDataError(ValueError):
    """Raised when seed_demo is asked for data it cannot generate."""


class GeneratorFailed(RuntimeError):
    """Raised when the process generating the rows fails or dies."""


def parse_start_date(value: str | date) -> date:
    """Return the start date given as YYYY-MM-DD, or raise DemoDataError."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise DemoDataError(f"--start-date: {value!r} is not a date (YYYY-MM-DD)") from None


#: The longest demo window: the market's one-minute paths of 12 symbols are held in
#: memory (about 6.3M prices a year).
MAX_DAYS = 366
#: The most events seed_demo takes: far beyond any demo (10^20 ended in a MemoryError).
MAX_EVENTS = 20_000_000


@dataclass(frozen=True)
class DemoConfig:
    """What to generate: sizes, window and seed."""

    seed: int = 42
    events: int = 20_000
    start_date: date = date(2024, 12, 20)
    days: int = 8
    clients: int = 4
    reset: bool = False
    #: No row later than this instant (UTC): the window's tail is cut, as a live
    #: backend's tables end now. None keeps the whole window (reproducible runs).
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.events < 0:
            raise DemoDataError(f"--events must be zero or more, not {self.events}")
        if self.events > MAX_EVENTS:
            raise DemoDataError(f"--events must be at most {MAX_EVENTS:,}, not {self.events}")
        if self.days < 1:
            raise DemoDataError(f"--days must be at least 1, not {self.days}")
        if self.days > MAX_DAYS:
            raise DemoDataError(
                f"--days must be at most {MAX_DAYS}, not {self.days}: the demo holds every"
                " minute's price of every symbol in memory"
            )
        if self.clients < 1:
            raise DemoDataError(f"--clients must be at least 1, not {self.clients}")
        if self.clients > 1000:
            raise DemoDataError(f"--clients must be at most 1000, not {self.clients}")

    @property
    def end_date(self) -> date:
        """Return the last day that holds data."""
        return self.start_date + timedelta(days=self.days - 1)


@dataclass(frozen=True)
class Offsets:
    """What the tables already hold: generated ids continue after these maxima."""

    client: int = 0
    strategy: int = 0
    operation: int = 0
    event_seq: int = 0
    audit: int = 0
    trade: int = 0
    trade_id: int = 0
    order_id: int = 0
    portfolio: int = 0
    kline: int = 0
    #: Per symbol, the first and last kline open time already stored (UTC microseconds):
    #: an append writes no kline inside it (one kline per symbol and minute).
    kline_spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    clients_by_name: dict[str, int] = field(default_factory=dict)
    strategies_by_key: dict[tuple[int, str], int] = field(default_factory=dict)


# --- Row layouts (tuple order = column order) -------------------------------------------


@dataclass(frozen=True, eq=False)  # hashed by identity: looked up for every row
class TableSpec:
    """A source table and the column order of the tuples generated for it."""

    model: type[models.Model]
    columns: tuple[str, ...]

    @property
    def table(self) -> str:
        """Return the database table name."""
        return self.model._meta.db_table

    @property
    def fields(self) -> list[models.Field]:
        """Return the model fields behind the columns, in tuple order."""
        by_column = {f.attname: f for f in self.model._meta.concrete_fields}
        return [by_column[column] for column in self.columns]


CLIENTS = TableSpec(Client, ("id", "name", "email", "is_active", "created_at"))
STRATEGIES = TableSpec(
    Strategy, ("id", "client_id", "name", "description", "config", "is_active", "created_at")
)
OPERATIONS = TableSpec(
    Operation,
    (
        "id", "client_id", "strategy_id", "symbol", "side", "status", "stop_price",
        "target_price", "entry_price", "entry_quantity", "exit_price", "exit_quantity",
        "opened_at", "closed_at", "created_at",
    ),
)  # fmt: skip
STOP_EVENTS = TableSpec(
    StopEvent,
    (
        "event_id", "event_seq", "occurred_at", "operation_id", "client_id", "symbol",
        "event_type", "trigger_price", "stop_price", "quantity", "side", "execution_token",
        "payload_json", "exchange_order_id", "fill_price", "slippage_pct", "source",
        "error_message", "retry_count",
    ),
)  # fmt: skip
AUDIT_TRANSACTIONS = TableSpec(
    AuditTransaction,
    (
        "id", "transaction_id", "client_id", "related_operation_id", "transaction_type",
        "status", "symbol", "asset", "quantity", "price", "total_value", "fee", "fee_asset",
        "side", "leverage", "account_type", "category", "description", "raw_response",
        "created_at", "executed_at", "source",
    ),
)  # fmt: skip
TRADES = TableSpec(
    Trade,
    (
        "id", "client_id", "symbol", "trade_id", "order_id", "order_list_id", "price", "qty",
        "quote_qty", "commission", "commission_asset", "time", "is_buyer", "is_maker",
        "is_best_match", "synced_at",
    ),
)  # fmt: skip
PORTFOLIOS = TableSpec(
    Portfolio, ("id", "client_id", "timestamp", "quote_asset", "total_value", "cash", "balances")
)

KLINES = TableSpec(
    Kline,
    (
        "id", "symbol", "interval", "open_time", "open", "high", "low", "close", "volume",
        "close_time", "quote_asset_volume", "number_of_trades", "taker_buy_base_asset_volume",
        "taker_buy_quote_asset_volume",
    ),
)  # fmt: skip

#: Load order: parents before children, so foreign keys hold after every chunk.
TABLES = (
    KLINES, CLIENTS, STRATEGIES, OPERATIONS, AUDIT_TRANSACTIONS, TRADES, STOP_EVENTS, PORTFOLIOS
)  # fmt: skip


@dataclass
class Batch:
    """Rows generated for one chunk, per table."""

    rows: dict[TableSpec, list[tuple]] = field(default_factory=lambda: {t: [] for t in TABLES})

    @property
    def events(self) -> int:
        """Return how many StopEvent rows the batch holds."""
        return len(self.rows[STOP_EVENTS])

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


#: What the loader receives per chunk: its StopEvent count, then per table the row count
#: and either the rows or their COPY text.
Chunk = tuple[int, list[tuple[TableSpec, int, "list[tuple] | bytes"]]]


class _Rng(random.Random):
    """``random.Random`` whose integer draws cost one ``random()`` call each.

    The stdlib's rejection sampling is exact but several times slower; a float draw is
    uniform enough for demo data and just as deterministic.
    """

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        return start + int(self.random() * (stop - start))

    def choice(self, seq: Any) -> Any:
        return seq[int(self.random() * len(seq))]
