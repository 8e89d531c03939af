"""Clients, strategies and portfolios; operations, their entries, exits and orders.

The methods of :class:`ClientsAndOperations` run on the generator (see generator.py),
which holds the state they share.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from api.demo.core import (
    _ZERO,
    AUDIT_TRANSACTIONS,
    CLIENTS,
    DAY_MINUTES,
    HOUR_US,
    MAX_RETRIES,
    MINUTE_US,
    OPERATIONS,
    PORTFOLIOS,
    QUOTE,
    STRATEGIES,
    TRADES,
    UNITS,
    _dt,
    _round_div,
    d8,
    s8,
    to_json,
)
from api.demo.market import _SYMBOL_WEIGHTS, DMIN, SYMBOLS, SymbolSpec

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


class ClientsAndOperations:
    """Generate clients, portfolios, operations and their orders (a part of the generator)."""

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
