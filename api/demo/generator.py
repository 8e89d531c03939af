"""The generator: one seeded stream of batches of rows for every source table."""

from __future__ import annotations

import bisect
import heapq
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from api.demo.core import (
    AUDIT_TRANSACTIONS,
    CHUNK_EVENTS,
    CHUNK_ROWS,
    DAY_MINUTES,
    KLINES,
    MINUTE_US,
    PORTFOLIOS,
    STOP_EVENTS,
    TRADES,
    Batch,
    DemoConfig,
    Offsets,
    TableSpec,
    _dt,
    _Rng,
    d8,
    uuid4_from,
)
from api.demo.executions import Executions
from api.demo.market import SYMBOLS, _Market
from api.demo.operations import ClientsAndOperations, _ClientProfile

KLINE_CLOSE_US = 59_999_000  # Binance: a candle closes a millisecond before the next opens


class _Generator(ClientsAndOperations, Executions):
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
        self.kline_row = offsets.kline
        self.last_minute = self.minutes - 1
        self.bnb_path = self.market.paths["BNBUSDC"]
        self.next_seq = offsets.event_seq
        self.next_trade_id = max(offsets.trade_id, 10**8)
        self.next_order_id = max(offsets.order_id, 10**9)
        self.batch = Batch()
        self._kept: dict[TableSpec, int] = {}  # last cursor value kept after a cut
        self.pending: list[tuple[int, int, tuple]] = []  # heap of (recorded_us, n, row)
        self.pushed = 0
        self.events = 0
        self.executions = 0
        self.outcomes: dict[int, list[tuple[int, bool]]] = {}  # client -> (ended_us, failed)
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
            self._klines(hour)
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

    def _klines(self, hour: int) -> None:
        """Write the hour's one-minute klines of every symbol, from the price paths."""
        rows, spans = self.batch.rows[KLINES], self.offsets.kline_spans
        first = hour * 60
        for symbol in SYMBOLS:
            stored = spans.get(symbol, (1, 0))
            for (
                open_us, open_, high, low, close, volume, quote, trades, taker_base, taker_quote
            ) in self.market.klines(symbol, first, first + 60, self.start_us):  # fmt: skip
                if stored[0] <= open_us <= stored[1]:
                    continue
                self.kline_row += 1
                rows.append(
                    (
                        self.kline_row, symbol, "1m", _dt(open_us), d8(open_), d8(high), d8(low),
                        d8(close), d8(volume), _dt(open_us + KLINE_CLOSE_US), d8(quote), trades,
                        d8(taker_base), d8(taker_quote),
                    )
                )  # fmt: skip

    def _full(self) -> bool:
        return len(self.batch.rows[STOP_EVENTS]) >= CHUNK_EVENTS or len(self.batch) >= CHUNK_ROWS

    def _take(self) -> Batch:
        batch, self.batch = self.batch, Batch()
        if self.config.until is not None:
            for spec, rows in batch.rows.items():
                # Only rows nothing refers to are cut: an operation opened after the cut
                # stays, since its orders and events may be older than it is.
                column = next((c for c in TIME_COLUMNS if c in spec.columns), None)
                if column is not None and rows and spec in RENUMBERED:
                    i = spec.columns.index(column)
                    batch.rows[spec] = self._renumber(
                        spec, [r for r in rows if r[i] <= self.config.until]
                    )
        return batch

    def _renumber(self, spec: TableSpec, rows: list[tuple]) -> list[tuple]:
        """Number the kept rows' cursor column without the holes the cut left (in the
        same order), as a live table's ids are: the exporter would wait on each hole."""
        if spec not in RENUMBERED:
            return rows
        column, offset = RENUMBERED[spec]
        i = spec.columns.index(column)
        last = self._kept.get(spec, getattr(self.offsets, offset))
        out = []
        for row in sorted(rows, key=lambda r: r[i]):
            last += 1
            out.append((*row[:i], last, *row[i + 1 :]))
        self._kept[spec] = last
        return out

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


#: The column that dates a row of each table (first match), for DemoConfig.until.
TIME_COLUMNS = ("occurred_at", "open_time", "time", "timestamp", "created_at")
#: Cursor columns no other row refers to, renumbered after a cut (column, Offsets field).
RENUMBERED = {
    STOP_EVENTS: ("event_seq", "event_seq"),
    AUDIT_TRANSACTIONS: ("id", "audit"),
    TRADES: ("id", "trade"),
    PORTFOLIOS: ("id", "portfolio"),
    KLINES: ("id", "kline"),
}


def generate(config: DemoConfig, offsets: Offsets | None = None) -> Iterator[Batch]:
    """Yield the rows of a run as batches (pure: touches no database)."""
    return _Generator(config, offsets or Offsets()).batches()
