"""The market: one-minute price paths per symbol, the minutes where levels are first
crossed, and the one-minute klines written from the same paths."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

from api.demo.core import DAY_MINUTES, UNITS, _Rng


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

_SYMBOL_WEIGHTS = list(itertools.accumulate(spec.weight for spec in SYMBOLS.values()))

DMIN = 0.004  # smallest stop/target distance from entry (fraction of price)


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
