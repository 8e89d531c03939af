"""Stand-in for the Robson backend's source models.

Field names, types and table names mirror the backend so that the datalake app, which
never imports this module, runs unchanged inside the real backend. Money is
DecimalField(20, 8), slippage DecimalField(10, 4).
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

MONEY = {"max_digits": 20, "decimal_places": 8}
SIDE_CHOICES = [("BUY", "Buy"), ("SELL", "Sell")]


class Client(models.Model):
    """A tenant of the trading platform."""

    name = models.CharField(max_length=100, unique=True, help_text="Tenant display name")
    email = models.EmailField(blank=True, help_text="Contact address")
    is_active = models.BooleanField(default=True, help_text="Whether the tenant may trade")
    created_at = models.DateTimeField(help_text="When the tenant was created (UTC)")

    class Meta:
        db_table = "clients_client"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class ClientMembership(models.Model):
    """The client a user belongs to (in Robson, ``user.client``): one client per user."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="client_membership",
        help_text="The user",
    )
    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="members", help_text="Their client"
    )

    def __str__(self) -> str:
        return f"{self.user} @ {self.client}"


class Strategy(models.Model):
    """A named trading strategy owned by a client."""

    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="strategies", help_text="Owner"
    )
    name = models.CharField(max_length=100, help_text="Strategy name")
    description = models.TextField(blank=True, help_text="What the strategy does")
    config = models.JSONField(default=dict, blank=True, help_text="Strategy parameters")
    is_active = models.BooleanField(default=True, help_text="Whether the strategy runs")
    created_at = models.DateTimeField(help_text="When the strategy was created (UTC)")

    class Meta:
        db_table = "api_strategy"
        verbose_name_plural = "strategies"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Operation(models.Model):
    """A position opened by a strategy, protected by a stop."""

    class Status(models.TextChoices):
        PLANNED = "PLANNED", "Planned"
        ACTIVE = "ACTIVE", "Active"
        CLOSED = "CLOSED", "Closed"
        CANCELLED = "CANCELLED", "Cancelled"

    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="operations", help_text="Tenant"
    )
    strategy = models.ForeignKey(
        Strategy, on_delete=models.PROTECT, related_name="operations", help_text="Strategy"
    )
    symbol = models.CharField(max_length=20, db_index=True, help_text="Trading pair, e.g. BTCUSDC")
    side = models.CharField(max_length=10, choices=SIDE_CHOICES, help_text="Entry side")
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PLANNED, help_text="Lifecycle"
    )
    stop_price = models.DecimalField(**MONEY, null=True, blank=True, help_text="Stop level")
    target_price = models.DecimalField(**MONEY, null=True, blank=True, help_text="Take-profit")
    entry_price = models.DecimalField(**MONEY, null=True, blank=True, help_text="Average entry")
    entry_quantity = models.DecimalField(**MONEY, null=True, blank=True, help_text="Size opened")
    exit_price = models.DecimalField(**MONEY, null=True, blank=True, help_text="Average exit")
    exit_quantity = models.DecimalField(**MONEY, null=True, blank=True, help_text="Size closed")
    opened_at = models.DateTimeField(null=True, blank=True, help_text="When the entry filled")
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When the exit filled")
    created_at = models.DateTimeField(help_text="When the operation was planned (UTC)")

    class Meta:
        db_table = "api_operation"
        ordering = ["id"]
        indexes = [models.Index(fields=["client", "status"], name="idx_operation_client_status")]

    def __str__(self) -> str:
        return f"Op#{self.pk} {self.side} {self.symbol} ({self.status})"


class StopEvent(models.Model):
    """One immutable stop-loss state transition (append-only event store)."""

    class EventType(models.TextChoices):
        STOP_TRIGGERED = "STOP_TRIGGERED", "Stop Triggered"
        EXECUTION_SUBMITTED = "EXECUTION_SUBMITTED", "Execution Submitted"
        EXECUTED = "EXECUTED", "Executed"
        FAILED = "FAILED", "Failed"
        BLOCKED = "BLOCKED", "Blocked"
        STALE_PRICE = "STALE_PRICE", "Stale Price"
        KILL_SWITCH = "KILL_SWITCH", "Kill Switch Activated"
        SLIPPAGE_BREACH = "SLIPPAGE_BREACH", "Slippage Limit Breached"
        CIRCUIT_BREAKER = "CIRCUIT_BREAKER", "Circuit Breaker Tripped"

    class Source(models.TextChoices):
        WEBSOCKET = "ws", "WebSocket Service"
        CRONJOB = "cron", "CronJob Backstop"
        MANUAL = "manual", "Manual Intervention"

    event_id = models.UUIDField(
        primary_key=True, default=uuid.uuid4, editable=False, help_text="Unique event id"
    )
    event_seq = models.BigIntegerField(
        unique=True, editable=False, help_text="Global sequence number (replay order)"
    )
    occurred_at = models.DateTimeField(db_index=True, help_text="When the event occurred (UTC)")
    operation = models.ForeignKey(
        Operation, on_delete=models.CASCADE, related_name="stop_events", help_text="Operation"
    )
    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="stop_events", help_text="Tenant"
    )
    symbol = models.CharField(max_length=20, db_index=True, help_text="Trading pair")
    event_type = models.CharField(
        max_length=50, choices=EventType.choices, db_index=True, help_text="Type of event"
    )
    trigger_price = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Price that triggered the stop"
    )
    stop_price = models.DecimalField(**MONEY, null=True, blank=True, help_text="Stop level")
    quantity = models.DecimalField(**MONEY, null=True, blank=True, help_text="Quantity to close")
    side = models.CharField(
        max_length=10, null=True, blank=True, choices=SIDE_CHOICES, help_text="Closing side"
    )
    execution_token = models.CharField(
        max_length=64,
        null=True,
        blank=True,
        db_index=True,
        help_text="Shared by every event of one execution",
    )
    payload_json = models.JSONField(default=dict, blank=True, help_text="Full event context")
    exchange_order_id = models.CharField(
        max_length=100, null=True, blank=True, help_text="Binance order id (if executed)"
    )
    fill_price = models.DecimalField(**MONEY, null=True, blank=True, help_text="Fill price")
    slippage_pct = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, help_text="Slippage, percent"
    )
    source = models.CharField(
        max_length=20, choices=Source.choices, db_index=True, help_text="Emitting component"
    )
    error_message = models.TextField(null=True, blank=True, help_text="Error if failed")
    retry_count = models.IntegerField(default=0, help_text="Retry attempts so far")

    class Meta:
        db_table = "stop_events"
        ordering = ["event_seq"]
        indexes = [
            models.Index(fields=["operation", "event_seq"], name="idx_stop_events_op_seq"),
            models.Index(fields=["client", "occurred_at"], name="idx_stop_events_tenant"),
            models.Index(fields=["event_type", "occurred_at"], name="idx_stop_events_type"),
        ]

    def __str__(self) -> str:
        return f"Event#{self.event_seq}: {self.event_type} Op#{self.operation_id}"


class AuditTransaction(models.Model):
    """Unified, append-only audit trail of every money movement."""

    class TransactionType(models.TextChoices):
        SPOT_BUY = "SPOT_BUY", "Spot Buy"
        SPOT_SELL = "SPOT_SELL", "Spot Sell"
        MARGIN_BUY = "MARGIN_BUY", "Margin Buy"
        MARGIN_SELL = "MARGIN_SELL", "Margin Sell"
        MARGIN_BORROW = "MARGIN_BORROW", "Margin Borrow"
        MARGIN_REPAY = "MARGIN_REPAY", "Margin Repay"
        TRANSFER_TO_MARGIN = "TRANSFER_TO_MARGIN", "Transfer to Margin"
        TRANSFER_FROM_MARGIN = "TRANSFER_FROM_MARGIN", "Transfer from Margin"
        STOP_LOSS_PLACED = "STOP_LOSS_PLACED", "Stop-Loss Placed"
        STOP_LOSS_TRIGGERED = "STOP_LOSS_TRIGGERED", "Stop-Loss Triggered"
        STOP_LOSS_CANCELLED = "STOP_LOSS_CANCELLED", "Stop-Loss Cancelled"
        TRADING_FEE = "TRADING_FEE", "Trading Fee"
        INTEREST_CHARGED = "INTEREST_CHARGED", "Interest Charged"
        DEPOSIT = "DEPOSIT", "Deposit"
        WITHDRAWAL = "WITHDRAWAL", "Withdrawal"

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        FILLED = "FILLED", "Filled"
        PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially Filled"
        CANCELLED = "CANCELLED", "Cancelled"
        FAILED = "FAILED", "Failed"

    transaction_id = models.CharField(
        max_length=64, unique=True, help_text="Unique transaction id (UUID or Binance id)"
    )
    client = models.ForeignKey(
        Client, on_delete=models.PROTECT, related_name="audit_transactions", help_text="Owner"
    )
    related_operation = models.ForeignKey(
        Operation,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_transactions",
        help_text="Operation this transaction belongs to",
    )
    transaction_type = models.CharField(
        max_length=30, choices=TransactionType.choices, db_index=True, help_text="Type"
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, help_text="Status"
    )
    symbol = models.CharField(max_length=20, db_index=True, help_text="Trading pair")
    asset = models.CharField(max_length=10, help_text="Asset moved, e.g. BTC")
    quantity = models.DecimalField(**MONEY, help_text="Quantity of asset")
    price = models.DecimalField(**MONEY, null=True, blank=True, help_text="Price per unit")
    total_value = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Quantity x price, in the quote asset"
    )
    fee = models.DecimalField(**MONEY, default=Decimal("0"), help_text="Fee charged")
    fee_asset = models.CharField(max_length=10, null=True, blank=True, help_text="Fee asset")
    side = models.CharField(max_length=10, null=True, blank=True, help_text="BUY or SELL")
    leverage = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Margin only")
    account_type = models.CharField(
        max_length=20, default="SPOT", help_text="SPOT, MARGIN or ISOLATED_MARGIN"
    )
    category = models.CharField(max_length=30, blank=True, help_text="Reporting category")
    description = models.TextField(blank=True, help_text="Human-readable description")
    raw_response = models.JSONField(null=True, blank=True, help_text="Raw exchange response")
    created_at = models.DateTimeField(db_index=True, help_text="When recorded (UTC)")
    executed_at = models.DateTimeField(null=True, blank=True, help_text="When executed (UTC)")
    source = models.CharField(max_length=50, default="robson", help_text="robson, binance_sync")

    class Meta:
        db_table = "api_audit_transaction"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["client", "created_at"], name="idx_audit_client_created"),
            models.Index(fields=["transaction_type", "created_at"], name="idx_audit_type_created"),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_type} {self.quantity} {self.asset} @ {self.price}"


class Trade(models.Model):
    """A fill synced from the exchange, in Binance's myTrades format."""

    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="trades", help_text="Owner"
    )
    symbol = models.CharField(max_length=20, help_text="Trading pair")
    trade_id = models.BigIntegerField(help_text="Binance `id`")
    order_id = models.BigIntegerField(help_text="Binance `orderId`")
    order_list_id = models.BigIntegerField(default=-1, help_text="Binance `orderListId`")
    price = models.DecimalField(**MONEY, help_text="Binance `price`")
    qty = models.DecimalField(**MONEY, help_text="Binance `qty`")
    quote_qty = models.DecimalField(**MONEY, help_text="Binance `quoteQty`")
    commission = models.DecimalField(**MONEY, help_text="Binance `commission`")
    commission_asset = models.CharField(max_length=10, help_text="Binance `commissionAsset`")
    time = models.DateTimeField(help_text="Binance `time`, as a UTC timestamp")
    is_buyer = models.BooleanField(help_text="Binance `isBuyer`")
    is_maker = models.BooleanField(help_text="Binance `isMaker`")
    is_best_match = models.BooleanField(default=True, help_text="Binance `isBestMatch`")
    synced_at = models.DateTimeField(help_text="When the sync stored this fill (UTC)")

    class Meta:
        db_table = "api_trade"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["symbol", "trade_id"], name="uniq_trade_symbol_id")
        ]

    def __str__(self) -> str:
        return f"{self.symbol} #{self.trade_id} {self.qty} @ {self.price}"


class Portfolio(models.Model):
    """A client's portfolio valuation at one instant."""

    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="portfolios", help_text="Owner"
    )
    timestamp = models.DateTimeField(db_index=True, help_text="Valuation instant (UTC)")
    quote_asset = models.CharField(max_length=10, default="USDC", help_text="Valuation currency")
    total_value = models.DecimalField(**MONEY, help_text="Total value in the quote asset")
    cash = models.DecimalField(**MONEY, help_text="Free quote-asset balance")
    balances = models.JSONField(
        default=dict, help_text='Per-asset balances as decimal strings, e.g. {"BTC": "0.5"}'
    )

    class Meta:
        db_table = "api_portfolio"
        ordering = ["id"]
        indexes = [models.Index(fields=["client", "timestamp"], name="idx_portfolio_client_ts")]

    def __str__(self) -> str:
        return f"{self.client_id} @ {self.timestamp}: {self.total_value} {self.quote_asset}"


class Kline(models.Model):
    """One market candle of a symbol, in Binance's kline format (GET /api/v3/klines).

    The auto-increment ``id`` is the monotonic cursor the bronze export follows.
    """

    class Interval(models.TextChoices):
        ONE_MINUTE = "1m", "1 minute"

    symbol = models.CharField(max_length=20, help_text="Trading pair, e.g. BTCUSDC")
    interval = models.CharField(
        max_length=8,
        choices=Interval.choices,
        default=Interval.ONE_MINUTE,
        help_text="Candle length (Binance interval code)",
    )
    open_time = models.DateTimeField(help_text="Binance `Kline open time`, as a UTC timestamp")
    open = models.DecimalField(**MONEY, help_text="Binance `Open price`")
    high = models.DecimalField(**MONEY, help_text="Binance `High price`")
    low = models.DecimalField(**MONEY, help_text="Binance `Low price`")
    close = models.DecimalField(**MONEY, help_text="Binance `Close price`")
    volume = models.DecimalField(**MONEY, help_text="Binance `Volume` (base asset)")
    close_time = models.DateTimeField(
        help_text="Binance `Kline close time` (last microsecond of the candle), UTC"
    )
    quote_asset_volume = models.DecimalField(**MONEY, help_text="Binance `Quote asset volume`")
    number_of_trades = models.BigIntegerField(help_text="Binance `Number of trades`")
    taker_buy_base_asset_volume = models.DecimalField(
        **MONEY, help_text="Binance `Taker buy base asset volume`"
    )
    taker_buy_quote_asset_volume = models.DecimalField(
        **MONEY, help_text="Binance `Taker buy quote asset volume`"
    )

    class Meta:
        db_table = "api_kline"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["symbol", "interval", "open_time"], name="uniq_kline_symbol_interval_open"
            )
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.interval} {self.open_time:%Y-%m-%d %H:%M} close {self.close}"
