"""The market: one-minute price paths per symbol, the minutes where levels are first
crossed, and the one-minute klines written from the same paths."""

from __future__ import annotations

import bisect
import itertools
import math
from array import array
from collections.abc import Iterator
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
    daily_quote_volume: float  # typical USDC traded per day

    @property
    def minute_sigma(self) -> float:
        """Return the typical standard deviation of one-minute log returns."""
        return self.daily_vol / math.sqrt(DAY_MINUTES)


SYMBOLS: dict[str, SymbolSpec] = {
    "BTCUSDC": SymbolSpec("BTC", 95_000.0, 1_000_000, 1_000, 0.030, 0.34, 400e6),
    "ETHUSDC": SymbolSpec("ETH", 3_400.0, 1_000_000, 10_000, 0.040, 0.24, 180e6),
    "SOLUSDC": SymbolSpec("SOL", 190.0, 1_000_000, 100_000, 0.055, 0.16, 60e6),
    "BNBUSDC": SymbolSpec("BNB", 700.0, 1_000_000, 100_000, 0.035, 0.10, 25e6),
    "XRPUSDC": SymbolSpec("XRP", 2.2, 10_000, 10_000_000, 0.060, 0.16, 45e6),
}

_SYMBOL_WEIGHTS = list(itertools.accumulate(spec.weight for spec in SYMBOLS.values()))

DMIN = 0.004  # smallest stop/target distance from entry (fraction of price)


def _walk(rng: _Rng, spec: SymbolSpec, minutes: int) -> list[int]:
    """Return a minute price path (1e-8 units, on the tick grid) with volatility regimes."""
    sigma = spec.minute_sigma
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


#: Relative quote volume by UTC hour: thin in the Asian night, busiest at the US open.
VOLUME_BY_HOUR = tuple(0.45 + 1.1 * math.exp(-(((h - 15) / 4.5) ** 2)) for h in range(24))
#: How much likelier failures and fast fills are at each UTC hour: the daily funding and
#: index rebalance around midnight, the European and US opens, exchange maintenance.
RISK_BY_HOUR = tuple(
    {0: 1.8, 1: 1.4, 7: 1.3, 8: 1.5, 13: 1.4, 14: 1.8}.get(h, 0.85) for h in range(24)
)
VOLATILITY_MINUTES = 15  # the window of the volatility that drives outcomes
VOLUME_MINUTES = DAY_MINUTES  # the window of the volume that drives outcomes


def _quote_volumes(rng: _Rng, spec: SymbolSpec, path: list[int]) -> array:
    """Return a quote (USDC) volume per minute: a daily cycle, a slowly drifting liquidity
    of the symbol's own, and more trading in the minutes that move the price."""
    per_minute = spec.daily_quote_volume / DAY_MINUTES
    sigma, gauss = spec.minute_sigma, rng.gauss
    liquidity = 0.0  # log of the symbol's liquidity, an AR(1) drawn hourly
    out = array("d", bytes(8 * len(path)))
    for minute in range(len(path)):
        if minute % 60 == 0:
            liquidity = 0.96 * liquidity + 0.15 * gauss(0.0, 1.0)
            level = per_minute * VOLUME_BY_HOUR[(minute // 60) % 24] * math.exp(liquidity)
        move = abs(path[minute] - path[minute - 1]) / path[minute] / sigma if minute else 1.0
        out[minute] = level * (0.6 + 0.4 * min(move, 6.0)) * math.exp(0.35 * gauss(0.0, 1.0))
    return out


def _trailing_volatility(path: list[int], window: int) -> array:
    """Return, per minute m, the standard deviation of the log returns of the closes of
    the ``window`` minutes before m (0 where there are fewer than two returns)."""
    returns = [0.0] + [math.log(b / a) for a, b in itertools.pairwise(path)]
    out = array("d", bytes(8 * len(path)))
    total = squares = 0.0
    for m in range(len(path)):
        # returns[m - window + 1 .. m - 1]: the returns between the window's closes
        if m >= 2:
            r = returns[m - 1]
            total, squares = total + r, squares + r * r
        if m - window >= 1:
            r = returns[m - window]
            total, squares = total - r, squares - r * r
        n = min(m, window) - 1
        if n >= 2:
            out[m] = math.sqrt(max(0.0, (squares - total * total / n) / (n - 1)))
    return out


class _Market:
    """Price paths of every symbol, their crossing structures and their trading volume."""

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
        self.quote_volumes = {
            symbol: _quote_volumes(rng, SYMBOLS[symbol], path)
            for symbol, path in self.paths.items()
        }
        self.volatility = {
            symbol: _trailing_volatility(path, VOLATILITY_MINUTES)
            for symbol, path in self.paths.items()
        }
        self.volume_sums: dict[str, array] = {}  # prefix sums of quote volume
        for symbol, volumes in self.quote_volumes.items():
            sums = array("d", [0.0])
            for volume in volumes:
                sums.append(sums[-1] + volume)
            self.volume_sums[symbol] = sums
        self.kline_rng = _Rng(rng.getrandbits(64))

    def stress(self, symbol: str, minute: int) -> float:
        """Return how fast and thin the market of ``symbol`` is before ``minute``.

        1.0 is typical; it grows with the volatility of the last 15 minutes and falls with
        the quote volume of the last 24 hours, each relative to the symbol's norm.
        """
        spec = SYMBOLS[symbol]
        minute = max(0, min(minute, self.minutes - 1))
        volatility = self.volatility[symbol][minute]
        fast = volatility / spec.minute_sigma if volatility else 1.0
        first = max(0, minute - VOLUME_MINUTES)
        sums = self.volume_sums[symbol]
        traded = sums[minute] - sums[first]
        expected = spec.daily_quote_volume * (minute - first) / DAY_MINUTES
        thin = expected / traded if traded > 0 else 1.0
        return min(3.5, max(0.4, fast)) ** 2 * min(3.0, max(0.4, thin)) ** 1.5

    def klines(self, symbol: str, first: int, stop: int, start_us: int) -> Iterator[tuple]:
        """Yield the one-minute klines of minutes [first, stop) as (open_time_us, open, high,
        low, close, volume, quote volume, trades, taker buy base, taker buy quote); prices
        and volumes in 1e-8 units, on the symbol's tick and lot grids."""
        spec, path, volumes = SYMBOLS[symbol], self.paths[symbol], self.quote_volumes[symbol]
        tick, step, draw, gauss = spec.tick, spec.step, self.kline_rng.random, self.kline_rng.gauss
        wick = spec.minute_sigma * 0.6
        for minute in range(first, stop):
            close = path[minute]
            open_ = path[minute - 1] if minute else close
            top, bottom = max(open_, close), min(open_, close)
            # at least two ticks beyond the path: the trades that trigger stops go there
            high = top + tick * (2 + int(abs(gauss(0.0, wick)) * top / tick))
            low = max(tick, bottom - tick * (2 + int(abs(gauss(0.0, wick)) * bottom / tick)))
            average = (open_ + high + low + close) // 4
            quote_target = int(volumes[minute] * UNITS)
            volume = max(step, quote_target * UNITS // average // step * step)
            quote = volume * average // UNITS
            trades = max(1, int(volumes[minute] / (300.0 + 900.0 * draw())))
            up = (close - open_) / (close * spec.minute_sigma * 3)
            share = min(0.95, max(0.05, 0.5 + 0.3 * max(-1.0, min(1.0, up)) + gauss(0.0, 0.05)))
            taker_base = int(volume * share) // step * step
            yield (
                start_us + minute * 60_000_000, open_, high, low, close, volume, quote, trades,
                taker_base, taker_base * average // UNITS,
            )  # fmt: skip
