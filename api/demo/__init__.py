"""Generate realistic, deterministic demo data for the source tables, and load it.

Modules: ``core`` (units, configuration, row layouts), ``market`` (price paths and
klines), ``operations`` (clients, portfolios, operations and orders), ``executions``
(stop executions), ``generator`` (the seeded stream of row batches) and ``writers``
(loading into the database, and :func:`seed_demo` itself).

``python manage.py seed_demo`` is a thin shell over :func:`seed_demo`. The data:

- **Prices**: one minute-level random walk per symbol (volatility regimes, busier US
  hours), at late-December-2024 levels, on Binance's tick and lot-size grids.
- **Klines**: the walk's minutes as one-minute candles per symbol (open = previous
  close, close = the walk, wicks of at least two ticks, so every trigger trade lies
  inside its candle), with a quote volume that follows a daily cycle, a slowly drifting
  liquidity per symbol and the size of the minute's move.
- **Operations** are placed *backwards* from the minute their exit level is first crossed:
  for a stop at minute ``m`` the entry is taken at a minute ``t0`` after which the price
  never touched the stop (nor the target) before ``m``. So every stop fires at the first
  crossing since entry, and the entry, trigger and fill prices all sit on the market path.
  Taking the operations in order of their exit minute is what keeps memory flat.
- **Stop executions** walk :data:`TRANSITIONS`; all events of one execution share an
  ``execution_token``. Guards (kill-switch and stale-feed windows, circuit breakers after
  repeated failures) block executions; blocked or failed ones are often picked up again
  later by the cron backstop or an operator (a new execution with a new token).
  Outcomes depend on the market as real stops do: failures, guards and slippage grow
  with the volatility of the last 15 minutes, fall with the symbol's volume of the last
  24 hours (relative to its norm), are higher at some UTC hours and after the client's
  consecutive failures of the last hour (``Executions._market_risk``).
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

from api.demo.core import (
    MAX_RETRIES,
    TABLES,
    TERMINAL_EVENTS,
    TRANSITIONS,
    DemoConfig,
    DemoDataError,
    GeneratorFailed,
    parse_start_date,
)
from api.demo.generator import generate
from api.demo.market import SYMBOLS
from api.demo.writers import SeedReport, seed_demo

__all__ = [
    "MAX_RETRIES",
    "SYMBOLS",
    "TABLES",
    "TERMINAL_EVENTS",
    "TRANSITIONS",
    "DemoConfig",
    "DemoDataError",
    "GeneratorFailed",
    "SeedReport",
    "generate",
    "parse_start_date",
    "seed_demo",
]
