"""Small, explicit source rows for tests that need exact control (seq gaps, bad rows)."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

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

T0 = datetime(2024, 12, 27, 23, 58, tzinfo=UTC)
_counter = itertools.count(1)


def operation(client_name: str = "alpha") -> Operation:
    client, _ = Client.objects.get_or_create(name=client_name, defaults={"created_at": T0})
    strategy, _ = Strategy.objects.get_or_create(client=client, name="breakout", created_at=T0)
    return Operation.objects.create(
        client=client, strategy=strategy, symbol="BTCUSDC", side="BUY", created_at=T0
    )


def events(op: Operation, seqs, *, start: datetime = T0, step: timedelta = timedelta(seconds=30),
           **fields) -> list[StopEvent]:  # fmt: skip
    """Create one STOP_TRIGGERED-style event per seq, `step` apart from `start`."""
    rows = []
    for i, seq in enumerate(seqs):
        values = {
            "event_id": uuid.UUID(int=seq, version=4),
            "event_seq": seq,
            "occurred_at": start + i * step,
            "operation": op,
            "client": op.client,
            "symbol": "BTCUSDC",
            "event_type": "STOP_TRIGGERED",
            "trigger_price": Decimal("95123.12345678"),
            "stop_price": Decimal("95000.00000001"),
            "quantity": Decimal("0.00012345"),
            "side": "SELL",
            "execution_token": f"tok-{op.pk}",
            "payload_json": {"entry_price": "96000.5", "note": 'quote " and, comma'},
            "slippage_pct": Decimal("-0.1234"),
            "source": "ws",
            "retry_count": 0,
        }
        values.update(fields)
        rows.append(StopEvent(**values))
    return StopEvent.objects.bulk_create(rows)


def audit(op: Operation, transaction_type: str = "SPOT_BUY", **fields) -> AuditTransaction:
    values = {
        "transaction_id": f"tx-{next(_counter)}",
        "client": op.client,
        "related_operation": op,
        "transaction_type": transaction_type,
        "status": "FILLED",
        "symbol": "BTCUSDC",
        "asset": "BTC",
        "quantity": Decimal("0.01000000"),
        "price": Decimal("95000.00000000"),
        "total_value": Decimal("950.00000000"),
        "fee": Decimal("0.95000000"),
        "fee_asset": "USDC",
        "side": "BUY",
        "raw_response": {"orderId": 1, "price": "95000.00"},
        "created_at": T0,
        "executed_at": T0,
    }
    values.update(fields)
    return AuditTransaction.objects.create(**values)


def trade(op: Operation, **fields) -> Trade:
    values = {
        "client": op.client,
        "symbol": "BTCUSDC",
        "trade_id": next(_counter),
        "order_id": 77,
        "price": Decimal("95000.10000000"),
        "qty": Decimal("0.01000000"),
        "quote_qty": Decimal("950.00100000"),
        "commission": Decimal("0.00001000"),
        "commission_asset": "BNB",
        "time": T0,
        "is_buyer": True,
        "is_maker": False,
        "synced_at": T0,
    }
    values.update(fields)
    return Trade.objects.create(**values)


def portfolio(op: Operation, **fields) -> Portfolio:
    values = {
        "client": op.client,
        "timestamp": T0,
        "total_value": Decimal("10000.12345678"),
        "cash": Decimal("5000.00000000"),
        "balances": {"BTC": "0.05000000", "USDC": "5000.00000000"},
    }
    values.update(fields)
    return Portfolio.objects.create(**values)


def kline(symbol: str = "BTCUSDC", *, open_time: datetime = T0, **fields) -> Kline:
    values = {
        "symbol": symbol,
        "interval": "1m",
        "open_time": open_time,
        "open": Decimal("95000.10000000"),
        "high": Decimal("95012.00000000"),
        "low": Decimal("94990.50000000"),
        "close": Decimal("95005.25000000"),
        "volume": Decimal("1.23456789"),
        "close_time": open_time + timedelta(minutes=1, microseconds=-1),
        "quote_asset_volume": Decimal("117284.12345678"),
        "number_of_trades": 321,
        "taker_buy_base_asset_volume": Decimal("0.61728394"),
        "taker_buy_quote_asset_volume": Decimal("58642.06172839"),
    }
    values.update(fields)
    return Kline.objects.create(**values)
