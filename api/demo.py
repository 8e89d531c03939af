"""Generate realistic, deterministic demo data for the source tables, and load it.

``python manage.py seed_demo`` is a thin shell over :func:`seed_demo`. The data:

- **Prices**: one minute-level random walk per symbol (volatility regimes, busier US
  hours), at late-December-2024 levels, on Binance's tick and lot-size grids.
- **Operations** are placed *backwards* from the minute their exit level is first crossed:
  for a stop at minute ``m`` the entry is taken at a minute ``t0`` after which the price
  never touched the stop (nor the target) before ``m``. So every stop fires at the first
  crossing since entry, and the entry, trigger and fill prices all sit on the market path.
  Taking the operations in order of their exit minute is what keeps memory flat.
- **Stop executions** walk :data:`TRANSITIONS`; all events of one execution share an
  ``execution_token``. Guards (kill-switch and stale-feed windows, circuit breakers after
  repeated failures) block executions; blocked or failed ones are often picked up again
  later by the cron backstop or an operator (a new execution with a new token).
- **event_seq** is the order in which the backend *recorded* events: ``occurred_at`` plus
  an ingest lag (mostly sub-second, a few percent minutes to hours), so late events carry
  larger sequence numbers than events that occurred after them.
- **Money** is integer units of 1e-8 throughout and becomes ``Decimal`` (8 places,
  slippage 4) only in the rows; slippage is in percent, positive when the fill is worse
  than the stop price for the closing side.

Determinism: every draw comes from one ``random.Random`` seeded with the seed, the start
date and the ids already in the tables, so the same command against the same database
writes identical rows, and an append never reuses an id, UUID or sequence number.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import io
import itertools
import json
import math
import multiprocessing
import queue
import random
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any

import psycopg
import psycopg.copy
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.db.models import Max

from api.models import AuditTransaction, Client, Operation, Portfolio, StopEvent, Strategy, Trade

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


@dataclass(frozen=True)
class SymbolSpec:
    """A traded pair: typical price, exchange grids (1e-8 units) and behaviour."""

    base: str
    price: float
    tick: int
    step: int
    daily_vol: float
    weight: float


SYMBOLS: dict[str, SymbolSpec] = {
    "BTCUSDC": SymbolSpec("BTC", 95_000.0, 1_000_000, 1_000, 0.030, 0.34),
    "ETHUSDC": SymbolSpec("ETH", 3_400.0, 1_000_000, 10_000, 0.040, 0.24),
    "SOLUSDC": SymbolSpec("SOL", 190.0, 1_000_000, 100_000, 0.055, 0.16),
    "BNBUSDC": SymbolSpec("BNB", 700.0, 1_000_000, 100_000, 0.035, 0.10),
    "XRPUSDC": SymbolSpec("XRP", 2.2, 10_000, 10_000_000, 0.060, 0.16),
}

CLIENT_NAMES = (
    "Atlas Capital",
    "Borealis Trading",
    "Cobalt Quant",
    "Delta Harbor Fund",
    "Ember Partners",
    "Fjord Digital",
    "Granite Macro",
    "Helix Ventures",
)

# (name, description, entry order type, reward/risk, slippage limit in 1e-4 %)
STRATEGY_TEMPLATES = (
    ("Momentum Breakout", "Buys range breakouts on rising volume", "MARKET", 2.0, 10_000),
    ("Mean Reversion", "Fades stretched moves back to the 4h mean", "LIMIT", 1.5, 7_500),
    ("Trend Follower", "Rides the 1h trend with a structural stop", "MARKET", 3.0, 15_000),
    ("Range Scalper", "Scalps the edges of intraday ranges", "LIMIT", 1.2, 5_000),
)

# (message, retryable, seconds until the error comes back)
EXCHANGE_ERRORS = (
    ("APIError(code=-1021): Timestamp for this request is outside of the recvWindow.", True, 0.2),
    (
        "APIError(code=-1003): Too much request weight used; current limit is 6000 request "
        "weight per 1 MINUTE.",
        True,
        0.1,
    ),
    (
        "ReadTimeout: HTTPSConnectionPool(host='api.binance.com', port=443): Read timed out. "
        "(read timeout=10)",
        True,
        10.0,
    ),
    ("APIError(code=-1001): Internal error; unable to process your request.", True, 0.4),
    ("APIError(code=-2010): Account has insufficient balance for requested action.", False, 0.1),
    ("APIError(code=-1013): Filter failure: LOT_SIZE", False, 0.05),
)

DMIN = 0.004  # smallest stop/target distance from entry (fraction of price)
MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_MINUTES = 1440
CHUNK_EVENTS = 8_000  # events per loaded chunk (other tables follow along)
CHUNK_ROWS = 25_000
INDEX_REBUILD_MIN_EVENTS = 200_000  # below this, keeping indexes is cheaper than rebuilding
CHILD_PROCESS_MIN_EVENTS = 50_000  # below this, a child process costs more than it saves

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


@dataclass(frozen=True)
class DemoConfig:
    """What to generate: sizes, window and seed."""

    seed: int = 42
    events: int = 20_000
    start_date: date = date(2024, 12, 20)
    days: int = 8
    clients: int = 4
    reset: bool = False

    def __post_init__(self) -> None:
        if self.events < 0:
            raise DemoDataError(f"--events must be zero or more, not {self.events}")
        if self.days < 1:
            raise DemoDataError(f"--days must be at least 1, not {self.days}")
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

#: Load order: parents before children, so foreign keys hold after every chunk.
TABLES = (CLIENTS, STRATEGIES, OPERATIONS, AUDIT_TRANSACTIONS, TRADES, STOP_EVENTS, PORTFOLIOS)


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


@dataclass
class SeedReport:
    """What a seed_demo run wrote, and how fast."""

    config: DemoConfig
    rows: dict[str, int]
    seconds: float

    @property
    def total_rows(self) -> int:
        """Return the number of rows written to all tables."""
        return sum(self.rows.values())

    def rate(self, rows: int) -> float:
        """Return rows per second over the whole run."""
        return rows / self.seconds if self.seconds > 0 else float("inf")

    def summary_lines(self) -> list[str]:
        """Return a human-readable summary: rows per table, then the rates."""
        config = self.config
        lines = [
            f"Seeded demo data (seed {config.seed}, {config.start_date} to {config.end_date}, "
            f"{config.clients} clients{', after reset' if config.reset else ''}) "
            f"in {self.seconds:.1f} s"
        ]
        lines += [f"  {name:<20}{count:>12,}" for name, count in self.rows.items()]
        events = self.rows[STOP_EVENTS.model._meta.verbose_name_plural]
        lines.append(
            f"  {'total':<20}{self.total_rows:>12,} rows: {self.rate(events):,.0f} stop events/s,"
            f" {self.rate(self.total_rows):,.0f} rows/s"
        )
        return lines


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


# --- The market: price paths and the minutes where levels are first crossed -------------


def _walk(rng: _Rng, spec: SymbolSpec, minutes: int) -> list[int]:
    """Return a minute price path (1e-8 units, on the tick grid) with volatility regimes."""
    sigma = spec.daily_vol / math.sqrt(DAY_MINUTES)
    tick = spec.tick
    scale = UNITS / tick
    gauss = rng.gauss
    price = spec.price * (1.0 + rng.uniform(-0.02, 0.02))
    regime = 1.0
    path = []
    for minute in range(minutes):
        if minute % 60 == 0:
            hour = (minute // 60) % 24
            regime = min(3.0, max(0.4, 1.0 + 0.8 * (regime - 1.0) + 0.25 * gauss(0.0, 1.0)))
            session = 1.25 if 13 <= hour < 21 else 0.85
        price *= 1.0 + sigma * regime * session * gauss(0.0, 1.0)
        path.append(max(1, round(price * scale)) * tick)
    return path


@dataclass
class _Crossings:
    """Minutes where a path makes a new extreme since its last comparable value.

    Built on ``q`` (the price path, negated for upward crossings): at each listed minute
    ``m``, ``q[m]`` is lower than every value since ``q`` was last at or below it; ``peak``
    is the highest value since then and ``floor`` the lowest, so any level in
    ``[q[m], floor)`` is crossed for the first time at ``m`` by a position opened at or
    after ``peak``.
    """

    q: list[int]
    minutes: list[int]
    peaks: list[int]
    floors: list[int]

    @classmethod
    def build(cls, q: list[int], last_minute: int) -> _Crossings:
        """Scan ``q`` once with a monotonic stack (amortised O(n))."""
        minutes: list[int] = []
        peaks: list[int] = []
        floors: list[int] = []
        # Entries: (value, max over the entry's span, where, min over the span).
        stack: list[tuple[int, int, int, int]] = []
        for m, v in enumerate(q):
            top = top_at = floor = None
            while stack and stack[-1][0] > v:
                _, smax, smax_at, smin = stack.pop()
                if top is None or smax > top:
                    top, top_at = smax, smax_at
                if floor is None or smin < floor:
                    floor = smin
            if top is None:
                stack.append((v, v, m, v))
                continue
            if 1 <= m <= last_minute and top - v >= DMIN * abs(top):
                minutes.append(m)
                peaks.append(top_at)
                floors.append(floor)
            if v >= top:
                stack.append((v, v, m, min(floor, v)))
            else:
                stack.append((v, top, top_at, min(floor, v)))
        return cls(q, minutes, peaks, floors)

    def between(self, first: int, stop: int) -> tuple[int, int]:
        """Return the index range of crossing minutes in [first, stop)."""
        return bisect.bisect_left(self.minutes, first), bisect.bisect_left(self.minutes, stop)


class _Market:
    """Price paths of every symbol and their crossing structures."""

    def __init__(self, rng: _Rng, minutes: int) -> None:
        self.minutes = minutes
        self.paths = {symbol: _walk(rng, spec, minutes) for symbol, spec in SYMBOLS.items()}
        # A sharp wick into the close of each day guarantees a stop that fires at 23:59
        # and completes after midnight, however small the run.
        self.midnight_symbols: dict[int, str] = {}
        for boundary in range(DAY_MINUTES, minutes, DAY_MINUTES):
            m = boundary - 1
            symbol = rng.choice(list(SYMBOLS))
            path, tick = self.paths[symbol], SYMBOLS[symbol].tick
            window = path[m - 120 : m]
            low = min(window) - tick * rng.randint(1, 5)
            cap = int(max(window) * (1 - 2.5 * DMIN)) // tick * tick
            if min(low, cap) > 0:
                path[m] = min(low, cap)
                self.midnight_symbols[m] = symbol
        last = minutes - 3  # leave room for the execution to complete inside the window
        self.down = {s: _Crossings.build(p, last) for s, p in self.paths.items()}
        self.up = {s: _Crossings.build([-x for x in p], last) for s, p in self.paths.items()}
        self.suffix_low: dict[str, list[int]] = {}
        self.suffix_high: dict[str, list[int]] = {}
        for symbol, path in self.paths.items():
            low, high = list(path), list(path)
            for i in range(minutes - 2, -1, -1):
                low[i] = min(low[i], low[i + 1])
                high[i] = max(high[i], high[i + 1])
            self.suffix_low[symbol], self.suffix_high[symbol] = low, high


# --- Generation -------------------------------------------------------------------------


@dataclass(frozen=True)
class _StrategyProfile:
    id: int
    name: str
    entry_type: str
    reward_risk: float
    slippage_limit: int  # 1e-4 percent


@dataclass(frozen=True)
class _ClientProfile:
    id: int
    name: str
    notional: float  # typical position size, USDC
    capital: int  # starting equity, 1e-8 USDC
    bnb_fees: bool
    failure_factor: float
    margin_share: float
    activity: float
    strategies: tuple[_StrategyProfile, ...]


@dataclass
class _Position:
    """An operation being generated (mutable while its executions are simulated)."""

    id: int
    client: _ClientProfile
    strategy: _StrategyProfile
    symbol: str
    spec: SymbolSpec
    side: str  # entry side
    close_side: str
    qty: int
    stop: int
    target: int
    entry: int = 0
    account_type: str = "SPOT"
    leverage: int | None = None
    entry_type: str = "SPOT_BUY"
    exit_type: str = "SPOT_SELL"
    payload: dict[str, Any] = field(default_factory=dict)
    exit_price: int | None = None
    closed_us: int | None = None


class _Generator:
    """Produce the rows of one seed_demo run as a stream of batches (pure: no database)."""

    def __init__(self, config: DemoConfig, offsets: Offsets) -> None:
        self.config = config
        self.offsets = offsets
        self.rng = _Rng(
            f"seed_demo:{config.seed}:{config.start_date.isoformat()}:{offsets.event_seq}:"
            f"{offsets.operation}:{offsets.audit}:{offsets.trade}:{offsets.portfolio}"
        )
        self.start_us = (
            int(datetime(*config.start_date.timetuple()[:3], tzinfo=UTC).timestamp()) * 10**6
        )
        self.minutes = config.days * DAY_MINUTES
        self.end_us = self.start_us + self.minutes * MINUTE_US
        self.market = _Market(self.rng, self.minutes)
        self.operation_row = offsets.operation
        self.audit_row = offsets.audit
        self.trade_row = offsets.trade
        self.portfolio_row = offsets.portfolio
        self.last_minute = self.minutes - 1
        self.bnb_path = self.market.paths["BNBUSDC"]
        self.next_seq = offsets.event_seq
        self.next_trade_id = max(offsets.trade_id, 10**8)
        self.next_order_id = max(offsets.order_id, 10**9)
        self.batch = Batch()
        self.pending: list[tuple[int, int, tuple]] = []  # heap of (recorded_us, n, row)
        self.pushed = 0
        self.events = 0
        self.executions = 0
        self.clients: list[_ClientProfile] = []
        self._windows()

    # -- helpers ------------------------------------------------------------------------

    def _next(self, counter: str) -> int:
        value = getattr(self, counter) + 1
        setattr(self, counter, value)
        return value

    def _uuid(self) -> uuid.UUID:
        return uuid4_from(self.rng.getrandbits(128))

    def _minute_us(self, minute: int) -> int:
        return self.start_us + minute * MINUTE_US

    def _minute(self, us: int) -> int:
        return (us - self.start_us) // MINUTE_US

    def _windows(self) -> None:
        """Draw the outage windows that make guards and failures cluster in time."""
        rng, span = self.rng, self.end_us - self.start_us
        days = self.config.days

        def windows(count: int, low_s: float, high_s: float) -> list[tuple[int, int]]:
            out = []
            for _ in range(count):
                begin = self.start_us + rng.randrange(span)
                out.append((begin, begin + int(rng.uniform(low_s, high_s) * 10**6)))
            return sorted(out)

        self.stale = {s: windows(3 * days, 20, 240) for s in SYMBOLS}
        self.incidents = windows(days, 300, 1200)  # exchange-side error bursts
        self.kill_windows: dict[int, list[tuple[int, int]]] = {}
        self._kill_count = max(1, days // 3)

    @staticmethod
    def _inside(windows: list[tuple[int, int]], us: int) -> bool:
        i = bisect.bisect_right(windows, (us, 1 << 62)) - 1
        return i >= 0 and windows[i][0] <= us < windows[i][1]

    # -- the stream ---------------------------------------------------------------------

    def batches(self) -> Iterator[Batch]:
        """Yield the run's rows in chunks; each chunk's parents precede its children."""
        self._setup_clients()
        hours = self.minutes // 60
        weights = []
        for hour in range(hours):
            day = self.config.start_date + timedelta(days=hour // 24)
            busy = 1.0 + 0.7 * math.exp(-((((hour % 24) - 15) / 4.0) ** 2))
            weights.append(busy * (0.75 if day.weekday() >= 5 else 1.0))
        total_weight = sum(weights)
        cumulative = 0.0
        per_execution = 4.2  # running estimate of events per execution
        for hour in range(hours):
            cumulative += weights[hour]
            goal = self.config.events * cumulative / total_weight
            last = hour == hours - 1
            if last:
                goal = self.config.events
            self._hour_book(hour)
            missing = goal - self.events
            planned = max(0, math.ceil(missing / per_execution)) if missing > 0 else 0
            if last and missing > 0:
                planned = int(planned * 1.5) + 10
            for plan in self._plans(hour, planned):
                if last and self.events >= self.config.events and plan[1] == "stop":
                    continue
                self._operation(plan)
                if self._full():
                    self._release(plan[0])
                    yield self._take()
            self._release(self._minute_us((hour + 1) * 60))
            if self.executions:
                per_execution = max(2.0, self.events / self.executions)
            if self._full():
                yield self._take()
        self._release(1 << 62)
        for _ in self._open_positions():
            yield self._take()
        yield self._take()

    def _full(self) -> bool:
        return len(self.batch.rows[STOP_EVENTS]) >= CHUNK_EVENTS or len(self.batch) >= CHUNK_ROWS

    def _take(self) -> Batch:
        batch, self.batch = self.batch, Batch()
        return batch

    def _release(self, watermark_us: int) -> None:
        """Number, in recording order, every pending event recorded before the watermark.

        Nothing generated later can be recorded before the watermark: later plans trigger
        at or after it, and every event is recorded at or after it occurs.
        """
        pending, out = self.pending, self.batch.rows[STOP_EVENTS]
        seq = self.next_seq
        while pending and pending[0][0] < watermark_us:
            row = heapq.heappop(pending)[2]
            seq += 1
            out.append((row[0], seq, *row[1:]))
        self.next_seq = seq

    # -- clients, strategies, portfolio ----------------------------------------------------

    def _setup_clients(self) -> None:
        rng, offsets = self.rng, self.offsets
        next_client, next_strategy = offsets.client, offsets.strategy
        created = _dt(self.start_us - 90 * 86_400 * 10**6)
        for index in range(self.config.clients):
            name = (
                CLIENT_NAMES[index] if index < len(CLIENT_NAMES) else f"Demo Client {index + 1:03d}"
            )
            client_id = offsets.clients_by_name.get(name)
            if client_id is None:
                next_client += 1
                client_id = next_client
                slug = name.lower().replace(" ", "-")
                joined = created + timedelta(days=index, seconds=rng.randrange(86_400))
                self.batch.rows[CLIENTS].append(
                    (client_id, name, f"ops@{slug}.example", True, joined)
                )
            strategies = []
            for k in range(2):
                template = STRATEGY_TEMPLATES[(2 * index + k) % len(STRATEGY_TEMPLATES)]
                title, description, entry_type, reward_risk, limit = template
                strategy_id = offsets.strategies_by_key.get((client_id, title))
                if strategy_id is None:
                    next_strategy += 1
                    strategy_id = next_strategy
                    config = {
                        "timeframe": rng.choice(["5m", "15m", "1h"]),
                        "risk_per_trade_pct": "1.0",
                        "reward_risk": f"{reward_risk:.1f}",
                        "slippage_limit_pct": f"{limit / 10_000:.2f}",
                        "max_retries": MAX_RETRIES,
                        "entry_order_type": entry_type,
                        "symbols": sorted(SYMBOLS),
                    }
                    self.batch.rows[STRATEGIES].append(
                        (
                            strategy_id, client_id, title, description, to_json(config), True,
                            created + timedelta(days=index + 1, seconds=rng.randrange(86_400)),
                        )
                    )  # fmt: skip
                strategies.append(
                    _StrategyProfile(strategy_id, title, entry_type, reward_risk, limit)
                )
            capital = rng.choice([25_000, 60_000, 150_000, 400_000, 1_000_000])
            self.clients.append(
                _ClientProfile(
                    id=client_id,
                    name=name,
                    notional=capital * rng.uniform(0.004, 0.015),
                    capital=capital * UNITS,
                    bnb_fees=rng.random() < 0.5,
                    failure_factor=rng.choice([0.5, 0.8, 1.0, 1.6, 3.0]),
                    margin_share=rng.choice([0.0, 0.2, 0.4]),
                    activity=rng.uniform(0.5, 2.0),
                    strategies=tuple(strategies),
                )
            )
            span = self.end_us - self.start_us
            kills = []
            for _ in range(self._kill_count):
                begin = self.start_us + rng.randrange(span)
                kills.append((begin, begin + rng.randint(10, 90) * MINUTE_US))
            self.kill_windows[client_id] = sorted(kills)
        self.client_weights = list(itertools.accumulate(c.activity for c in self.clients))
        self.holdings = {c.id: self._initial_holdings(c) for c in self.clients}

    def _initial_holdings(self, client: _ClientProfile) -> dict[str, int]:
        rng, holdings = self.rng, {QUOTE: client.capital // 2}
        for symbol, spec in SYMBOLS.items():
            share = client.capital // 2 * spec.weight
            holdings[spec.base] = (
                int(share * rng.uniform(0.5, 1.5) * UNITS) // (self.market.paths[symbol][0])
            )
        return holdings

    def _hour_book(self, hour: int) -> None:
        """Write each client's hourly valuation and the hour's non-trading transactions."""
        rng, at = self.rng, self._minute_us(hour * 60)
        minute = hour * 60
        prices = {spec.base: self.market.paths[s][minute] for s, spec in SYMBOLS.items()}
        for client in self.clients:
            holdings = self.holdings[client.id]
            for kind, chance in (("DEPOSIT", 0.012), ("WITHDRAWAL", 0.008), ("TRANSFER", 0.02)):
                if rng.random() < chance:
                    amount = (
                        int(client.capital * rng.uniform(0.01, 0.08)) // 10**6 * 10**6
                    )  # whole cents
                    if kind == "WITHDRAWAL":
                        amount = min(amount, holdings[QUOTE] // 2)
                        holdings[QUOTE] -= amount
                    elif kind == "DEPOSIT":
                        holdings[QUOTE] += amount
                    self._misc_audit(client, kind, amount, at + rng.randrange(HOUR_US))
            if client.margin_share:
                borrowed = client.capital * client.margin_share * 0.25
                interest = int(borrowed * 0.0000052)
                holdings[QUOTE] -= interest
                self._misc_audit(client, "INTEREST", interest, at + 59 * MINUTE_US, borrowed)
            if rng.random() < 0.15:  # rebalance between cash and one asset
                symbol = rng.choices(list(SYMBOLS), cum_weights=_SYMBOL_WEIGHTS)[0]
                base, price = SYMBOLS[symbol].base, self.market.paths[symbol][minute]
                value = int(holdings[QUOTE] * rng.uniform(-0.1, 0.1))
                value = max(value, -holdings[base] * price // UNITS // 2)
                holdings[QUOTE] -= value
                holdings[base] += value * UNITS // price
            total = holdings[QUOTE] + sum(holdings[base] * prices[base] // UNITS for base in prices)
            balances = {asset: s8(units) for asset, units in holdings.items() if units}
            self.batch.rows[PORTFOLIOS].append(
                (
                    self._next("portfolio_row"), client.id, _dt(at), QUOTE, d8(total),
                    d8(holdings[QUOTE]), to_json(balances),
                )
            )  # fmt: skip

    def _misc_audit(
        self, client: _ClientProfile, kind: str, amount: int, at_us: int, principal: float = 0
    ) -> None:
        rng, ms = self.rng, at_us // 1000
        tx = self._uuid()
        if kind == "DEPOSIT":
            ttype, category, text = "DEPOSIT", "transfer", "Deposit of USDC from external wallet"
            raw = {
                "id": tx.hex[:20], "amount": s8(amount), "coin": QUOTE, "network": "ETH",
                "status": 1, "address": "0x" + tx.hex + tx.hex[:8], "txId": "0x" + tx.hex * 2,
                "insertTime": ms, "confirmTimes": "12/12",
            }  # fmt: skip
        elif kind == "WITHDRAWAL":
            ttype, category, text = "WITHDRAWAL", "transfer", "Withdrawal of USDC to cold wallet"
            raw = {
                "id": tx.hex, "amount": s8(amount), "transactionFee": "1.00000000", "coin": QUOTE,
                "status": 6, "network": "ETH", "applyTime": ms, "txId": "0x" + tx.hex * 2,
            }  # fmt: skip
        elif kind == "TRANSFER":
            ttype, category, text = "TRANSFER_TO_MARGIN", "transfer", "Spot to cross margin"
            raw = {"tranId": rng.getrandbits(40), "asset": QUOTE, "amount": s8(amount)}
        else:
            ttype, category, text = "INTEREST_CHARGED", "interest", "Hourly margin interest"
            raw = {
                "txId": rng.getrandbits(40), "interestAccuredTime": ms, "asset": QUOTE,
                "rawAsset": QUOTE, "principal": s8(int(principal)), "interest": s8(amount),
                "interestRate": "0.00000520", "type": "PERIODIC", "isolatedSymbol": "",
            }  # fmt: skip
        when = _dt(at_us)
        self.batch.rows[AUDIT_TRANSACTIONS].append(
            (
                self._next("audit_row"), str(tx), client.id, None, ttype, "FILLED", QUOTE,
                QUOTE, d8(amount), None, d8(amount), _ZERO, None, None, None,
                "MARGIN" if ttype in ("INTEREST_CHARGED", "TRANSFER_TO_MARGIN") else "SPOT",
                category, text, to_json(raw), when, when, "binance_sync",
            )
        )  # fmt: skip

    # -- planning an hour ---------------------------------------------------------------

    def _plans(self, hour: int, executions: int) -> list[tuple]:
        """Return the hour's operations as (exit_us, kind, symbol, crossings, index, forced),
        in exit-time order."""
        rng, market = self.rng, self.market
        first, stop = hour * 60, hour * 60 + 60
        plans = []
        midnight = stop if stop % DAY_MINUTES == 0 and stop < self.minutes else None
        if midnight is not None and executions and (stop - 1) in market.midnight_symbols:
            symbol = market.midnight_symbols[stop - 1]
            crossings = market.down[symbol]
            lo, hi = crossings.between(stop - 1, stop)
            if lo < hi:
                for _ in range(max(1, executions // 300)):
                    at = self._minute_us(stop) - rng.randint(200_000, 1_800_000)
                    plans.append((at, "stop", symbol, crossings, lo, True))
        symbols = list(SYMBOLS)
        kinds = ["stop"] * executions + ["target"] * round(executions * 0.25)
        for kind in kinds:
            long = rng.random() < 0.65
            # A long's stop is crossed downwards, its target upwards; a short's the reverse.
            downwards = long if kind == "stop" else not long
            order = rng.choices(symbols, cum_weights=_SYMBOL_WEIGHTS, k=2) + symbols
            for symbol in order:
                crossings = (market.down if downwards else market.up)[symbol]
                lo, hi = crossings.between(first, stop)
                if lo == hi:
                    crossings = (market.up if downwards else market.down)[symbol]
                    lo, hi = crossings.between(first, stop)
                if lo < hi:
                    index = rng.randrange(lo, hi)
                    at = self._minute_us(crossings.minutes[index]) + rng.randrange(MINUTE_US)
                    plans.append((at, kind, symbol, crossings, index, False))
                    break
        plans.sort(key=lambda plan: plan[0])
        return plans

    # -- operations -----------------------------------------------------------------------

    def _operation(self, plan: tuple) -> None:
        exit_us, kind, symbol, crossings, index, forced = plan
        rng, spec = self.rng, SYMBOLS[symbol]
        q, m = crossings.q, crossings.minutes[index]
        peak, floor = crossings.peaks[index], crossings.floors[index]
        sign = 1 if crossings.q is self.market.paths[symbol] else -1
        tick = spec.tick
        # Entry at t0 in [peak, m): nothing between t0 and m reaches q[m]'s side of floor.
        t0 = peak
        for _ in range(3):
            candidate = rng.randint(peak, m - 1)
            if q[candidate] - q[m] >= DMIN * abs(q[candidate]):
                t0 = candidate
                break
        entry_q = q[t0]
        room = (floor - q[m]) // tick - 1
        crossing_q = q[m] + tick * rng.randint(0, max(0, min(room, 20)))
        distance = entry_q - crossing_q
        distance_floor = abs(entry_q) * rng.uniform(1.0, 1.5)
        client = rng.choices(self.clients, cum_weights=self.client_weights)[0]
        strategy = client.strategies[0 if rng.random() < 0.6 else 1]
        reward_risk = strategy.reward_risk
        ratio = reward_risk if kind == "stop" else 1 / reward_risk
        other_q = entry_q + int(distance * ratio * rng.uniform(0.95, 1.1))
        # Beyond everything since the entry (so it was not hit first), and no closer than
        # DMIN: a target-closed operation's stop is its target distance over reward/risk.
        other_q = max(
            other_q, q[peak] + tick * rng.randint(1, 10), entry_q + int(DMIN * distance_floor)
        )
        other_q = other_q // tick * tick
        # Back to prices: a "down" crossing is a long's stop or a short's target.
        long = (sign == 1) == (kind == "stop")
        crossing, other = sign * crossing_q, sign * other_q
        stop, target = (crossing, other) if kind == "stop" else (other, crossing)
        if stop <= 0 or target <= 0:
            return
        position = self._position(client, strategy, symbol, long, stop, target)
        opened_us = self._minute_us(t0) + rng.randrange(MINUTE_US)
        if opened_us >= exit_us:
            opened_us = exit_us - rng.randint(1_000_000, 30_000_000)
        entry_price = sign * entry_q
        self._entry(position, entry_price, opened_us)
        if kind == "stop":
            # The trade that crossed the stop, a tick or two through the minute's price.
            beyond = tick * rng.choice((0, 0, 0, 1, 2))
            trigger = sign * q[m] - beyond if long else sign * q[m] + beyond
            r = rng.random()
            if forced or r < 0.9:
                source = "ws"
            elif r < 0.98:  # the websocket service missed it; the minute cron caught it
                source, exit_us = "cron", exit_us + rng.randint(1, 60) * 10**6
            else:
                source, exit_us = "manual", exit_us + rng.randint(30, 600) * 10**6
            self._stop_execution(position, exit_us, trigger, source, forced=forced)
        else:
            self._target_exit(position, exit_us)
        self._operation_row(position, opened_us)

    def _position(
        self,
        client: _ClientProfile,
        strategy: _StrategyProfile,
        symbol: str,
        long: bool,
        stop: int,
        target: int,
    ) -> _Position:
        rng, spec = self.rng, SYMBOLS[symbol]
        position = _Position(
            id=self._next("operation_row"), client=client, strategy=strategy, symbol=symbol,
            spec=spec, side="BUY" if long else "SELL", close_side="SELL" if long else "BUY",
            qty=0, stop=stop, target=target,
        )  # fmt: skip
        leverage = 1
        if not long or rng.random() < client.margin_share:
            leverage = rng.choice((2, 3, 3, 5))
            position.leverage = leverage
            position.account_type = "ISOLATED_MARGIN" if rng.random() < 0.3 else "MARGIN"
            position.entry_type = "MARGIN_BUY" if long else "MARGIN_SELL"
            position.exit_type = "MARGIN_SELL" if long else "MARGIN_BUY"
        notional = client.notional * leverage * rng.lognormvariate(0.0, 0.45)
        price = stop if stop else target
        position.qty = max(1, int(notional * UNITS / price * UNITS) // spec.step) * spec.step
        return position

    def _entry(self, position: _Position, price: int, opened_us: int) -> None:
        rng = self.rng
        kind = position.strategy.entry_type
        placed = opened_us - (
            rng.randint(20_000, 400_000) if kind == "MARKET" else rng.randint(1, 180) * 10**6
        )
        _, entry = self._order(position, False, price, kind, placed, opened_us, "Entry")
        position.entry = entry
        position.payload = {
            "entry_price": s8(entry),
            "target_price": s8(position.target),
            "stop_distance_pct": f"{abs(entry - position.stop) * 100 / entry:.4f}",
            "slippage_limit_pct": f"{position.strategy.slippage_limit / 10_000:.2f}",
            "strategy": position.strategy.name,
            "strategy_id": position.strategy.id,
            "operation_side": position.side,
            "account_type": position.account_type,
            "leverage": position.leverage or 1,
            "order_type": "MARKET",
        }

    def _target_exit(self, position: _Position, hit_us: int) -> None:
        placed = hit_us - self.rng.randint(60, 3600) * 10**6
        _, position.exit_price = self._order(
            position, True, position.target, "LIMIT", placed, hit_us, "Target"
        )
        position.closed_us = hit_us

    def _operation_row(self, position: _Position, opened_us: int) -> None:
        rng = self.rng
        created_us = opened_us - rng.randint(2, 1200) * 10**6
        closed = position.closed_us is not None
        self.batch.rows[OPERATIONS].append(
            (
                position.id, position.client.id, position.strategy.id, position.symbol,
                position.side, "CLOSED" if closed else "ACTIVE", d8(position.stop),
                d8(position.target), d8(position.entry), d8(position.qty),
                d8(position.exit_price) if closed else None, d8(position.qty) if closed else None,
                _dt(opened_us), _dt(position.closed_us) if closed else None, _dt(created_us),
            )
        )  # fmt: skip

    def _open_positions(self) -> Iterator[None]:
        """Add operations still open at the end of the window, and a few never entered.

        Yield whenever the batch is full (there are many in large runs).
        """
        rng, market = self.rng, self.market
        operations = self.operation_row - self.offsets.operation
        if not operations:
            return
        horizon = min(self.minutes - 2, 36 * 60)
        for _ in range(max(2, operations // 50)):
            client = rng.choices(self.clients, cum_weights=self.client_weights)[0]
            strategy = client.strategies[rng.randrange(2)]
            symbol = rng.choice(list(SYMBOLS))
            t0 = self.minutes - 1 - rng.randint(1, horizon)
            price, tick = market.paths[symbol][t0], SYMBOLS[symbol].tick
            low, high = market.suffix_low[symbol][t0 + 1], market.suffix_high[symbol][t0 + 1]
            d = rng.uniform(0.006, 0.03)
            long = rng.random() < 0.65
            reward = strategy.reward_risk
            if long:
                stop = min(int(price * (1 - d)), low - tick) // tick * tick
                target = max(int(price * (1 + reward * d)), high + tick) // tick * tick
            else:
                stop = max(int(price * (1 + d)), high + tick) // tick * tick
                target = min(int(price * (1 - reward * d)), low - tick) // tick * tick
            if min(stop, target) <= 0:
                continue
            position = self._position(client, strategy, symbol, long, stop, target)
            opened_us = self._minute_us(t0) + rng.randrange(MINUTE_US)
            self._entry(position, price, opened_us)
            self._operation_row(position, opened_us)
            if self._full():
                yield
        for _ in range(max(1, operations // 200)):  # planned, or cancelled before entry
            client = rng.choices(self.clients, cum_weights=self.client_weights)[0]
            strategy = client.strategies[rng.randrange(2)]
            symbol = rng.choice(list(SYMBOLS))
            spec = SYMBOLS[symbol]
            minute = rng.randrange(self.minutes)
            price = market.paths[symbol][minute]
            d = rng.uniform(0.006, 0.03)
            stop = int(price * (1 - d)) // spec.tick * spec.tick
            target = int(price * (1 + strategy.reward_risk * d)) // spec.tick * spec.tick
            status = "PLANNED" if minute > self.minutes - 180 else "CANCELLED"
            self.batch.rows[OPERATIONS].append(
                (
                    self._next("operation_row"), client.id, strategy.id, symbol, "BUY", status,
                    d8(stop), d8(target), None, None, None, None, None, None,
                    _dt(self._minute_us(minute) + rng.randrange(MINUTE_US)),
                )
            )  # fmt: skip
            if self._full():
                yield

    # -- orders and fills -----------------------------------------------------------------

    def _order(
        self,
        position: _Position,
        closing: bool,
        price: int,
        kind: str,
        placed_us: int,
        filled_us: int,
        purpose: str,
        token: uuid.UUID | None = None,
    ) -> tuple[int, int]:
        """Fill an order in one to three exchange trades and audit it.

        Return (Binance order id, average fill price). The audit row's quantity, total and
        fee are the sums of its trades'; a fee paid in BNB is also its own TRADING_FEE row.
        """
        draw, random_bits = self.rng.random, self.rng.getrandbits
        spec, client, symbol = position.spec, position.client, position.symbol
        step, qty_total = spec.step, position.qty
        side = position.close_side if closing else position.side
        self.next_order_id += 1 + int(draw() * 40)
        order_id = self.next_order_id
        lots = qty_total // step
        maker = kind == "LIMIT"
        r = draw()
        if lots < 3 or r < (0.85 if maker else 0.65):
            sizes: tuple[int, ...] = (lots,)
        elif r < 0.92:
            first = 1 + int(draw() * (lots - 1))
            sizes = (first, lots - first)
        else:
            first = 1 + int(draw() * (lots - 2))
            second = 1 + int(draw() * (lots - 1 - first))
            sizes = (first, second, lots - first - second)
        bnb = client.bnb_fees
        fee_asset = "BNB" if bnb else QUOTE
        bnb_price = self.bnb_path[max(0, min(self.last_minute, self._minute(filled_us)))]
        buyer = side == "BUY"
        walk = spec.tick if buyer else -spec.tick
        trades, fills = self.batch.rows[TRADES], []
        total_quote = total_fee = 0
        level, when = price, filled_us
        for j, lot_count in enumerate(sizes):
            qty = lot_count * step
            if j:
                when += int(draw() * 3000)
                if not maker:  # a market order walks the book
                    level += walk * int(draw() * 4)
            quote = level * qty // UNITS  # exact: ticks times lots stay on the 1e-8 grid
            # 0.1% in the quote asset, or 0.075% (BNB discount) paid in BNB
            fee = _round_div(quote * 75_000, bnb_price) if bnb else _round_div(quote, 1000)
            self.next_trade_id += 1 + int(draw() * 25)
            self.trade_row += 1
            synced = when + (5 + int(draw() * 600)) * 10**6
            trades.append(
                (
                    self.trade_row, client.id, symbol, self.next_trade_id, order_id, -1,
                    d8(level), d8(qty), d8(quote), d8(fee), fee_asset, _dt(when), buyer, maker,
                    True, _dt(synced),
                )
            )  # fmt: skip
            fills.append(
                {
                    "price": s8(level), "qty": s8(qty), "commission": s8(fee),
                    "commissionAsset": fee_asset, "tradeId": self.next_trade_id,
                }
            )  # fmt: skip
            total_quote += quote
            total_fee += fee
        vwap = _round_div(total_quote * UNITS, qty_total)
        raw = {
            "symbol": symbol,
            "orderId": order_id,
            "orderListId": -1,
            "clientOrderId": "rbs_" + (token.hex if token else f"{random_bits(112):028x}")[:28],
            "transactTime": filled_us // 1000,
            "price": "0.00000000" if kind == "MARKET" else s8(price),
            "origQty": s8(qty_total),
            "executedQty": s8(qty_total),
            "cummulativeQuoteQty": s8(total_quote),
            "status": "FILLED",
            "timeInForce": "GTC",
            "type": kind,
            "side": side,
            "workingTime": placed_us // 1000,
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "fills": fills,
        }
        if position.leverage:
            raw["isIsolated"] = position.account_type == "ISOLATED_MARGIN"
        audit = self.batch.rows[AUDIT_TRANSACTIONS]
        filled = _dt(filled_us)
        self.audit_row += 1
        audit.append(
            (
                self.audit_row, str(self._uuid()), client.id, position.id,
                position.exit_type if closing else position.entry_type, "FILLED", symbol,
                spec.base, d8(qty_total), d8(vwap), d8(total_quote), d8(total_fee), fee_asset,
                side, position.leverage, position.account_type, "trade",
                f"{purpose} {side} {s8(qty_total)} {symbol} @ {s8(vwap)} "
                f"({position.strategy.name})",
                to_json(raw), _dt(placed_us), filled, "robson",
            )
        )  # fmt: skip
        if bnb:  # paying in BNB is a balance movement of its own
            self.audit_row += 1
            audit.append(
                (
                    self.audit_row, str(self._uuid()), client.id, position.id, "TRADING_FEE",
                    "FILLED", symbol, "BNB", d8(total_fee), d8(bnb_price),
                    d8(total_fee * bnb_price // UNITS), _ZERO, None, None, None,
                    position.account_type, "fee",
                    f"Trading fee for order {order_id} paid in BNB (25% discount)",
                    to_json({"orderId": order_id, "commissionAsset": "BNB", "rate": "0.00075"}),
                    filled, filled, "robson",
                )
            )  # fmt: skip
        return order_id, vwap

    # -- stop executions ------------------------------------------------------------------

    def _stop_execution(
        self,
        position: _Position,
        trigger_us: int,
        trigger: int,
        source: str,
        *,
        forced: bool = False,
        follows: str | None = None,
    ) -> None:
        """Simulate one execution of a triggered stop; may schedule a follow-up one."""
        rng, client = self.rng, position.client
        token = self._uuid()
        token_text = str(token)
        payload = dict(position.payload)
        payload["trigger_source"] = source
        if follows:
            payload["previous_execution_token"] = follows
        events: list[list] = []  # [occurred_us, type, retry, fill, slip, order_id, error]
        state: str | None = None

        def emit(at_us: int, kind: str, retry: int = 0, *extra: Any) -> None:
            nonlocal state
            if kind not in TRANSITIONS[state]:
                raise AssertionError(f"generator bug: {state} -> {kind}")
            state = kind
            events.append([at_us, kind, retry, *extra])

        emit(trigger_us, TRIGGERED)
        t = trigger_us
        guard = None
        if not forced:
            if self._inside(self.kill_windows[client.id], t):
                guard = KILL_SWITCH
            elif self._inside(self.stale[position.symbol], t) or rng.random() < 0.008:
                guard = STALE_PRICE
            elif rng.random() < 0.004:
                guard = CIRCUIT_BREAKER
        outcome = BLOCKED
        retry = 0
        if guard is not None:
            t += rng.randint(1_000, 150_000)
            reason = _GUARD_REASONS[guard].format(symbol=position.symbol, client=client.name)
            emit(t, guard, 0, None, None, None, reason)
            if guard != KILL_SWITCH:
                t += rng.randint(0, 25_000)  # a kill switch blocks in the same instant
            emit(t, BLOCKED, 0, None, None, None, reason)
        else:
            if forced:  # queued across midnight
                midnight = (t // (DAY_MINUTES * MINUTE_US) + 1) * DAY_MINUTES * MINUTE_US
                t = midnight + rng.randint(5_000, 400_000)
            else:
                t += _SUBMIT_LATENCY_US[source](rng)
            incident = self._inside(self.incidents, t)
            failures = 0
            while True:
                emit(t, SUBMITTED, retry)
                placed_us = t
                base = 0.6 if incident else 0.045 * client.failure_factor
                if rng.random() < (base if retry == 0 else max(base, 0.3)):
                    message, retryable, seconds = rng.choice(EXCHANGE_ERRORS)
                    t += int(seconds * 10**6 * rng.uniform(0.5, 1.5))
                    emit(t, FAILED, retry, None, None, None, message)
                    self._failed_order_audit(position, placed_us, message)
                    failures += 1
                    if retry >= MAX_RETRIES or not retryable or rng.random() < 0.1:
                        outcome = FAILED
                        break
                    if failures >= 2 and rng.random() < 0.25:
                        t += rng.randint(1_000, 50_000)
                        reason = _GUARD_REASONS[CIRCUIT_BREAKER].format(
                            symbol=position.symbol, client=client.name
                        )
                        emit(t, CIRCUIT_BREAKER, retry, None, None, None, reason)
                        emit(t, BLOCKED, retry, None, None, None, reason)
                        break
                    retry += 1
                    t += int(500_000 * 2**retry * rng.uniform(0.8, 1.2))  # backoff
                    continue
                t += int(rng.lognormvariate(-1.4, 0.6) * 10**6) + 30_000
                order_id, fill, slippage = self._stop_fill(position, trigger, placed_us, t, token)
                emit(t, EXECUTED, retry, fill, slippage, order_id)
                position.exit_price, position.closed_us = fill, t
                if abs(slippage) > position.strategy.slippage_limit:
                    limit = position.strategy.slippage_limit
                    t += rng.randint(500, 20_000)
                    emit(
                        t, SLIPPAGE_BREACH, retry, fill, slippage, order_id,
                        f"Slippage {slippage / 10_000:.4f}% exceeds the "
                        f"{limit / 10_000:.2f}% limit",
                    )  # fmt: skip
                outcome = EXECUTED
                break
        self._stop_audit(position, trigger_us, trigger, outcome, token)
        self._push_events(position, events, token_text, trigger, source, to_json(payload))
        self.executions += 1
        if outcome != EXECUTED and follows is None and rng.random() < 0.6:
            self._follow_up(position, events[-1][0], token_text)

    def _follow_up(self, position: _Position, after_us: int, token: str) -> None:
        """Let the cron backstop (or an operator) retry a stop that did not execute."""
        rng = self.rng
        at = after_us + rng.randint(60, 90 * 60) * 10**6
        minute = self._minute(at)
        if minute >= self.minutes - 2:
            return
        price = self.market.paths[position.symbol][minute]
        beyond = price <= position.stop if position.close_side == "SELL" else price >= position.stop
        self._stop_execution(position, at, price, "cron" if beyond else "manual", follows=token)

    def _stop_fill(
        self, position: _Position, trigger: int, placed_us: int, filled_us: int, token: uuid.UUID
    ) -> tuple[int, int, int]:
        """Fill the closing market order; return (order id, fill price, slippage in 1e-4 %)."""
        rng = self.rng
        r = rng.random()
        if r < 0.0025:
            extra = rng.uniform(5.0, 15.0)  # flash move
        elif r < 0.055:
            extra = rng.uniform(0.8, 3.5)  # thin book
        else:
            extra = rng.gauss(0.03, 0.15)
        selling = position.close_side == "SELL"
        tick = position.spec.tick
        move = int(trigger * extra / 100)
        price = max(tick, (trigger - move if selling else trigger + move) // tick * tick)
        order_id, fill = self._order(
            position, True, price, "MARKET", placed_us, filled_us, "Stop exit", token
        )
        adverse = position.stop - fill if selling else fill - position.stop
        return order_id, fill, _round_div(adverse * 1_000_000, position.stop)

    def _failed_order_audit(self, position: _Position, placed_us: int, message: str) -> None:
        code = int(message.split("code=")[1].split(")")[0]) if "code=" in message else -1007
        self.batch.rows[AUDIT_TRANSACTIONS].append(
            (
                self._next("audit_row"), str(self._uuid()), position.client.id, position.id,
                position.exit_type, "FAILED", position.symbol, position.spec.base,
                d8(position.qty), None, None, _ZERO, None, position.close_side,
                position.leverage, position.account_type, "trade",
                f"Stop exit {position.close_side} {position.symbol} rejected",
                to_json({"code": code, "msg": message}), _dt(placed_us), None, "robson",
            )
        )  # fmt: skip

    def _stop_audit(
        self,
        position: _Position,
        trigger_us: int,
        trigger: int,
        outcome: str,
        token: uuid.UUID,
    ) -> None:
        status = {EXECUTED: "FILLED", FAILED: "FAILED"}.get(outcome, "CANCELLED")
        self.batch.rows[AUDIT_TRANSACTIONS].append(
            (
                self._next("audit_row"), str(self._uuid()), position.client.id, position.id,
                "STOP_LOSS_TRIGGERED", status, position.symbol, position.spec.base,
                d8(position.qty), d8(trigger), d8(trigger * position.qty // UNITS), _ZERO, None,
                position.close_side, position.leverage, position.account_type, "stop_loss",
                f"Stop {s8(position.stop)} crossed at {s8(trigger)}: {outcome.lower()}",
                to_json(
                    {
                        "execution_token": str(token), "stop_price": s8(position.stop),
                        "trigger_price": s8(trigger), "outcome": outcome,
                    }
                ),
                _dt(trigger_us), _dt(position.closed_us) if outcome == EXECUTED else None,
                "robson",
            )
        )  # fmt: skip

    def _push_events(
        self,
        position: _Position,
        events: list[list],
        token: str,
        trigger: int,
        source: str,
        payload: str,
    ) -> None:
        """Queue the execution's events by recording time (occurred_at + ingest lag)."""
        rng, pending = self.rng, self.pending
        trigger_d, stop_d, qty_d = d8(trigger), d8(position.stop), d8(position.qty)
        previous_at = previous_recorded = None
        for at_us, kind, retry, *extra in events:
            r = rng.random()
            if r < 0.955:
                lag = int(rng.expovariate(25.0) * 10**6) % 1_000_000
            elif r < 0.97:
                lag = rng.randint(1, 30) * 10**6
            else:  # minutes to hours late
                lag = int(60 * 10**6 * 240 ** rng.random())
            recorded = at_us + lag
            if at_us == previous_at and recorded <= previous_recorded:
                recorded = previous_recorded + 1  # simultaneous events keep their order
            previous_at, previous_recorded = at_us, recorded
            fill = slip = order_id = error = None
            if extra:
                fill, slip, order_id, error = (extra + [None] * 4)[:4]
            self.pushed += 1
            heapq.heappush(
                pending,
                (
                    recorded,
                    self.pushed,
                    (
                        self._uuid(), _dt(at_us), position.id, position.client.id,
                        position.symbol, kind, trigger_d, stop_d, qty_d, position.close_side,
                        token, payload, str(order_id) if order_id else None,
                        d8(fill) if fill is not None else None,
                        Decimal(slip).scaleb(-4) if slip is not None else None, source, error,
                        retry,
                    ),
                ),
            )  # fmt: skip
        self.events += len(events)


_SYMBOL_WEIGHTS = list(itertools.accumulate(spec.weight for spec in SYMBOLS.values()))

_GUARD_REASONS = {
    KILL_SWITCH: "Kill switch active for tenant {client}: trading paused",
    STALE_PRICE: "Stale price for {symbol}: last tick older than 5s",
    CIRCUIT_BREAKER: "Circuit breaker OPEN for {symbol} after repeated failures",
}

_SUBMIT_LATENCY_US: dict[str, Callable[[_Rng], int]] = {
    "ws": lambda rng: rng.randint(20_000, 250_000),
    "cron": lambda rng: rng.randint(200_000, 2_000_000),
    "manual": lambda rng: rng.randint(2_000_000, 40_000_000),
}


def generate(config: DemoConfig, offsets: Offsets | None = None) -> Iterator[Batch]:
    """Yield the rows of a run as batches (pure: touches no database)."""
    return _Generator(config, offsets or Offsets()).batches()


# --- Loading ----------------------------------------------------------------------------


def read_offsets() -> Offsets:
    """Return the maxima already in the tables, and the clients/strategies to reuse."""
    events = StopEvent.objects.aggregate(seq=Max("event_seq"))
    trades = Trade.objects.aggregate(id=Max("id"), trade=Max("trade_id"), order=Max("order_id"))

    def top(model: type[models.Model]) -> int:
        return model.objects.aggregate(top=Max("id"))["top"] or 0

    return Offsets(
        client=top(Client),
        strategy=top(Strategy),
        operation=top(Operation),
        event_seq=events["seq"] or 0,
        audit=top(AuditTransaction),
        trade=trades["id"] or 0,
        trade_id=trades["trade"] or 0,
        order_id=trades["order"] or 0,
        portfolio=top(Portfolio),
        clients_by_name=dict(Client.objects.values_list("name", "id")),
        strategies_by_key={
            (client_id, name): pk
            for pk, client_id, name in Strategy.objects.values_list("id", "client_id", "name")
        },
    )


class _InsertWriter:
    """Insert generated rows with executemany, adapting values as the ORM would."""

    def __init__(self) -> None:
        kinds = models.UUIDField | models.DateTimeField  # JSON columns already hold text
        self.prepare: dict[TableSpec, list[tuple[int, Callable[[Any], Any]]]] = {
            spec: [
                (i, lambda v, f=f: f.get_db_prep_save(v, connection))
                for i, f in enumerate(spec.fields)
                if isinstance(f, kinds)
            ]
            for spec in TABLES
        }

    def write(self, spec: TableSpec, rows: list[tuple]) -> None:
        """Insert rows into the table."""
        prepare = self.prepare[spec]
        adapted = []
        for row in rows:
            values = list(row)
            for i, fn in prepare:
                values[i] = fn(values[i])
            adapted.append(values)
        quote = connection.ops.quote_name
        sql = "INSERT INTO {} ({}) VALUES ({})".format(
            quote(spec.table),
            ", ".join(quote(c) for c in spec.columns),
            ", ".join(["%s"] * len(spec.columns)),
        )
        with connection.cursor() as cursor:
            for start in range(0, len(adapted), 10_000):
                cursor.executemany(sql, adapted[start : start + 10_000])


class _PostgresWriter:
    """Stream rows into PostgreSQL with COPY (psycopg 3)."""

    def write(self, spec: TableSpec, rows: list[tuple] | bytes) -> None:
        """COPY rows, or COPY text already formatted by :func:`_format_copy`, into the table."""
        quote = connection.ops.quote_name
        columns = ", ".join(quote(c) for c in spec.columns)
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {quote(spec.table)} ({columns}) FROM STDIN") as copy,
        ):
            if isinstance(rows, bytes):
                copy.write(rows)
            else:
                write_row = copy.write_row
                for row in rows:
                    write_row(row)


def _format_copy(cursor: psycopg.Cursor, spec: TableSpec, rows: list[tuple]) -> bytes:
    """Return the rows as COPY text, formatted by psycopg without touching the server."""
    buffer = io.BytesIO()
    with psycopg.copy.Copy(cursor, binary=False, writer=psycopg.copy.FileWriter(buffer)) as copy:
        write_row = copy.write_row
        for row in rows:
            write_row(row)
    return buffer.getvalue()


@contextmanager
def _constraints_suspended(tables: Iterable[str]) -> Iterator[None]:
    """Drop the tables' foreign keys and plain indexes; re-create them on exit.

    PostgreSQL's advice for bulk loads: building an index once over the loaded rows and
    validating a foreign key with one join are far cheaper than maintaining them row by
    row. Primary keys and unique constraints stay (re-adding them would make the serial
    tail longer than what the load saves). Used only inside the transaction of a reset,
    so a failed load rolls the drops back with everything else.
    """
    quote = connection.ops.quote_name
    names = list(tables)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
            FROM pg_constraint
            WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])
            ORDER BY conname
            """,
            [names],
        )
        foreign_keys = cursor.fetchall()
        cursor.execute(
            """
            SELECT ci.relname, pg_get_indexdef(ix.indexrelid)
            FROM pg_index ix
            JOIN pg_class ci ON ci.oid = ix.indexrelid
            WHERE ix.indrelid = ANY(%s::regclass[])
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid)
            ORDER BY ci.relname
            """,
            [names],
        )
        indexes = cursor.fetchall()
        for table, name, _ in foreign_keys:
            cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {quote(name)}")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        for table, name, definition in foreign_keys:
            cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (the rows are acyclic; reference counting frees
    them). Otherwise every collection walks the millions of row objects alive in the
    chunks, which costs a third of the generation time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _prefetched(batches: Iterator[Batch], depth: int = 3) -> Iterator[Batch]:
    """Run the generator in a thread so that generating overlaps loading."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Queue an item unless the consumer has gone; return whether it was queued."""
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not offer(batch):
                    return
            offer(done)
        except BaseException as exc:
            offer(exc)

    worker = threading.Thread(target=produce, name="seed_demo-generator", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _in_process(config: DemoConfig, offsets: Offsets) -> Iterator[Chunk]:
    """Yield generated chunks as rows, generated by a thread ahead of the loader."""
    for batch in _prefetched(generate(config, offsets)):
        parts = [(spec, len(rows), rows) for spec, rows in batch.rows.items() if rows]
        yield batch.events, parts


def _in_child_process(config: DemoConfig, offsets: Offsets) -> Iterator[Chunk]:
    """Yield generated chunks as COPY text, generated and formatted by a child process.

    Generating and formatting are pure Python: in the loading process they would share
    one core through the GIL, while here the child keeps one core busy and the server
    the other. The child only formats: rows reach the database through this process's
    connection, inside its transaction. The pipe holds one chunk, so memory stays flat.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_format_chunks,
        args=(config, offsets, connection.get_connection_params(), sender),
        name="seed_demo-generator",
        daemon=True,
    )
    child.start()
    sender.close()
    try:
        while True:
            try:
                message = receiver.recv()
            except EOFError:
                raise GeneratorFailed(f"the generator process died ({child.exitcode})") from None
            if message is None:
                return
            if isinstance(message, str):
                raise GeneratorFailed(f"the generator process failed:\n{message}")
            events, parts = message
            yield events, [(TABLES[index], count, text) for index, count, text in parts]
    finally:
        receiver.close()
        if child.is_alive():
            child.terminate()
        child.join()


def _format_chunks(
    config: DemoConfig, offsets: Offsets, params: dict[str, Any], sender: Connection
) -> None:
    """Child process: generate the run and send each chunk as COPY text per table."""
    try:
        gc.disable()
        # A connection of our own gives Copy its adapters; no statement is ever sent.
        with psycopg.connect(**params) as formatting:
            cursor = formatting.cursor()
            for batch in generate(config, offsets):
                parts = [
                    (index, len(rows), _format_copy(cursor, spec, rows))
                    for index, (spec, rows) in enumerate(batch.rows.items())
                    if rows
                ]
                sender.send((batch.events, parts))
        sender.send(None)
    except BaseException:
        sender.send(traceback.format_exc())
    finally:
        sender.close()


def seed_demo(config: DemoConfig, progress: Callable[[int], object] | None = None) -> SeedReport:
    """Generate the demo data described by ``config`` into the default database.

    With ``reset`` the source tables are emptied first and the whole load is one
    transaction; otherwise rows are appended, one transaction per chunk, with ids and
    event_seq continuing after what the tables hold. ``progress`` is called with the
    number of StopEvents loaded by each chunk.
    """
    started = time.perf_counter()
    counts = {spec.model._meta.verbose_name_plural: 0 for spec in TABLES}
    postgres = connection.vendor == "postgresql"
    with _gc_paused(), transaction.atomic() if config.reset else nullcontext():
        if config.reset:
            _empty_tables()
        offsets = read_offsets()
        writer = _PostgresWriter() if postgres else _InsertWriter()
        rebuild = postgres and config.reset and config.events >= INDEX_REBUILD_MIN_EVENTS
        suspended = (
            _constraints_suspended([spec.table for spec in TABLES]) if rebuild else nullcontext()
        )
        parallel = postgres and config.events >= CHILD_PROCESS_MIN_EVENTS
        chunks = (_in_child_process if parallel else _in_process)(config, offsets)
        with suspended, closing(chunks):
            for events, parts in chunks:
                with nullcontext() if config.reset else transaction.atomic():
                    _write_chunk(writer, parts, counts, postgres)
                if progress is not None:
                    progress(events)
        _reset_sequences()
    return SeedReport(config=config, rows=counts, seconds=time.perf_counter() - started)


def _write_chunk(
    writer: _InsertWriter | _PostgresWriter,
    parts: list[tuple[TableSpec, int, list[tuple] | bytes]],
    counts: dict[str, int],
    postgres: bool,
) -> None:
    """Write one chunk's rows, parents first, and count them."""
    if postgres:  # check foreign keys at each COPY: the queue of deferred checks stays small
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for spec, count, rows in parts:
        writer.write(spec, rows)
        counts[spec.model._meta.verbose_name_plural] += count
    if postgres:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _empty_tables() -> None:
    tables = [spec.table for spec in reversed(TABLES)]
    statements = connection.ops.sql_flush(no_style(), tables, reset_sequences=True)
    connection.ops.execute_sql_flush(statements)


def _reset_sequences() -> None:
    """Move every sequence of the seeded tables past the explicit values just inserted.

    Django's reset covers the auto-increment ids; on PostgreSQL any other column fed by a
    sequence it owns (``stop_events.event_seq``) needs the same, or the next insert that
    uses the column default collides with a seeded row.
    """
    tables = [spec.table for spec in TABLES]
    if connection.vendor != "postgresql":
        statements = connection.ops.sequence_reset_sql(no_style(), [s.model for s in TABLES])
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT d.refobjid::regclass::text, a.attname, d.objid::regclass::text
            FROM pg_depend d
            JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
            JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_class'::regclass AND d.refobjid = ANY(%s::regclass[])
              AND d.deptype IN ('a', 'i')
            ORDER BY 1, 2
            """,
            [tables],
        )
        for table, column, sequence in cursor.fetchall():
            cursor.execute(
                f"SELECT setval(%s, COALESCE(MAX({quote(column)}), 1), MAX({quote(column)})"
                f" IS NOT NULL) FROM {quote(table)}",
                [sequence],
            )
