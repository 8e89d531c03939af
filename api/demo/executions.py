"""Stop executions: the events of each execution, its fill, and its audit rows.

The methods of :class:`Executions` run on the generator (see generator.py).
"""

from __future__ import annotations

import bisect
import heapq
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from api.demo.core import (
    _ZERO,
    AUDIT_TRANSACTIONS,
    BLOCKED,
    CIRCUIT_BREAKER,
    DAY_MINUTES,
    EXECUTED,
    FAILED,
    HOUR_US,
    KILL_SWITCH,
    MAX_RETRIES,
    MINUTE_US,
    SLIPPAGE_BREACH,
    STALE_PRICE,
    SUBMITTED,
    TRANSITIONS,
    TRIGGERED,
    UNITS,
    _dt,
    _Rng,
    _round_div,
    d8,
    s8,
    to_json,
)
from api.demo.market import RISK_BY_HOUR
from api.demo.operations import _Position

#: Divides the market risk so that its average over the executions is about 1: stops
#: fire more often in fast markets than a random minute is fast.
RISK_NORM = 1.8

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


class Executions:
    """Simulate stop executions (a part of the generator)."""

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
        market_risk = self._market_risk(position.symbol, trigger_us)
        risk = market_risk * (1.0 + 0.6 * self._failure_streak(client.id, trigger_us))
        guard = None
        if not forced:
            if self._inside(self.kill_windows[client.id], t):
                guard = KILL_SWITCH
            elif self._inside(self.stale[position.symbol], t) or rng.random() < 0.008 * risk:
                guard = STALE_PRICE
            elif rng.random() < 0.004 * risk:
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
                base = 0.6 if incident else min(0.6, 0.045 * client.failure_factor * risk)
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
                order_id, fill, slippage = self._stop_fill(
                    position, trigger, placed_us, t, token, market_risk
                )
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
        self._record_outcome(client.id, events[-1][0], outcome == FAILED)
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

    def _market_risk(self, symbol: str, at_us: int) -> float:
        """Return how much likelier than usual failures and fast fills are at ``at_us``:
        the market's stress (fast, thin) times the risk of the UTC hour; 1.0 is typical."""
        minute = self._minute(at_us)
        hour = (at_us // HOUR_US) % 24
        return self.market.stress(symbol, minute) * RISK_BY_HOUR[hour] / RISK_NORM

    def _failure_streak(self, client_id: int, at_us: int) -> int:
        """Return how many of the client's executions that ended in the hour before
        ``at_us`` ended FAILED since the last that did not."""
        ended = self.outcomes.get(client_id, [])
        i = bisect.bisect_left(ended, (at_us, False))
        streak = 0
        while i > 0 and ended[i - 1][1] and ended[i - 1][0] >= at_us - HOUR_US:
            streak += 1
            i -= 1
        return streak

    def _record_outcome(self, client_id: int, ended_us: int, failed: bool) -> None:
        """Remember when an execution of the client ended, and whether it FAILED."""
        ended = self.outcomes.setdefault(client_id, [])
        bisect.insort(ended, (ended_us, failed))
        # Executions are generated about in time order (follow-ups at most hours later):
        # what ended three hours before the latest can no longer be in anyone's hour.
        if len(ended) > 512 and ended[0][0] < ended[-1][0] - 3 * HOUR_US:
            del ended[: bisect.bisect_left(ended, (ended[-1][0] - 3 * HOUR_US, False))]

    def _stop_fill(
        self,
        position: _Position,
        trigger: int,
        placed_us: int,
        filled_us: int,
        token: uuid.UUID,
        risk: float = 1.0,
    ) -> tuple[int, int, int]:
        """Fill the closing market order; return (order id, fill price, slippage in 1e-4 %).

        Fast, thin markets and risky hours (``risk`` above 1) slip more, and more often.
        """
        rng = self.rng
        r = rng.random()
        if r < 0.0025 * risk:
            extra = rng.uniform(5.0, 15.0)  # flash move
        elif r < min(0.3, 0.05 * risk**0.75):
            extra = rng.uniform(0.8, 3.5)  # thin book
        else:
            extra = rng.gauss(0.03, 0.15 * math.sqrt(risk))
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
