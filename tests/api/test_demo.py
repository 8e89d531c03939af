"""seed_demo: determinism, event-sequence validity, realism, exact money, append, wiring."""

import bisect
import io
import itertools
import json
import math
import random
import re
import statistics
import threading
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, models
from django.utils import timezone

from api.demo import (
    MAX_RETRIES,
    SYMBOLS,
    TABLES,
    TERMINAL_EVENTS,
    TRANSITIONS,
    DemoConfig,
    DemoDataError,
    core,
    generate,
    market,
    seed_demo,
    writers,
)
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

SMALL = 3000


def snapshot() -> dict[str, list[tuple]]:
    """Return every row of every source table, all columns, in primary-key order."""
    return {
        spec.table: list(
            spec.model.objects.order_by("pk").values_list(
                *[f.attname for f in spec.model._meta.concrete_fields]
            )
        )
        for spec in TABLES
    }


def executions() -> dict[str, list[StopEvent]]:
    """Return each execution's events in replay order (occurred_at, ties by event_seq)."""
    grouped: dict[str, list[StopEvent]] = defaultdict(list)
    for event in StopEvent.objects.order_by("occurred_at", "event_seq"):
        grouped[event.execution_token].append(event)
    return grouped


def walk(value, found: list) -> None:
    """Collect every float inside a JSON value."""
    if isinstance(value, float):
        found.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            walk(item, found)
    elif isinstance(value, list):
        for item in value:
            walk(item, found)


# --- Pure helpers -------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("bits", [0, 1, 2**128 - 1, 0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0])
def test_uuid4_from_equals_the_uuid_constructor(bits: int) -> None:
    made = core.uuid4_from(bits)
    assert made == uuid.UUID(int=bits, version=4)
    assert str(made) == str(uuid.UUID(int=bits, version=4))
    assert hash(made) == hash(uuid.UUID(int=bits, version=4))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("units", "text", "exponent"),
    [
        (0, "0.00000000", -8),
        (1, "0.00000001", -8),
        (9_512_345_000_000, "95123.45000000", -8),
        (-250_000_000, "-2.50000000", -8),
        (12_345_678_901_234_567_890, "123456789012.34567890", -8),
    ],
)
def test_money_units_become_exact_decimals_and_binance_strings(
    units: int, text: str, exponent: int
) -> None:
    assert core.s8(units) == text
    value = core.d8(units)
    assert value == Decimal(text)
    assert value.as_tuple().exponent == exponent


@pytest.mark.unit
def test_crossings_are_first_crossings_since_the_entry_span() -> None:
    rng = random.Random(3)
    q = [1_000_000]
    for _ in range(3000):
        q.append(q[-1] + rng.randint(-2000, 2000))
    crossings = market._Crossings.build(q, last_minute=len(q) - 3)
    assert crossings.minutes, "a 3000-step walk has crossings"
    for m, peak, floor in zip(crossings.minutes, crossings.peaks, crossings.floors, strict=True):
        span_start = max((j for j in range(m) if q[j] <= q[m]), default=-1) + 1
        span = q[span_start:m]
        assert span
        assert min(span) == floor > q[m]
        assert span_start <= peak < m
        assert q[peak] == max(span)
        assert q[peak] - q[m] >= market.DMIN * q[peak]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"events": -1}, "--events"),
        ({"days": 0}, "--days"),
        ({"clients": 0}, "--clients"),
    ],
)
def test_config_rejects_impossible_sizes(changes: dict, message: str) -> None:
    with pytest.raises(DemoDataError, match=message):
        DemoConfig(**changes)


@pytest.mark.unit
@pytest.mark.parametrize("text", ["2024-13-01", "yesterday", "", "20241220x"])
def test_malformed_start_dates_are_rejected(text: str) -> None:
    with pytest.raises(DemoDataError, match="--start-date"):
        core.parse_start_date(text)


@pytest.mark.unit
def test_generated_rows_are_typed_exactly_and_stream_in_bounded_chunks() -> None:
    config = DemoConfig(events=60_000, days=2)
    batches = 0
    events = 0
    for batch in generate(config):
        batches += 1
        events += batch.events
        # Chunks are cut once a threshold is crossed: the slack is the events in flight.
        assert batch.events <= core.CHUNK_EVENTS * 1.2
        assert len(batch) <= core.CHUNK_ROWS * 1.2
        for spec, rows in batch.rows.items():
            fields = spec.fields
            for row in rows:
                assert len(row) == len(fields)
                for value, model_field in zip(row, fields, strict=True):
                    assert not isinstance(value, float), (spec.table, model_field.name)
                    if value is None:
                        continue
                    if isinstance(model_field, models.DecimalField):
                        assert isinstance(value, Decimal)
                        assert value.as_tuple().exponent == -model_field.decimal_places
                    elif isinstance(model_field, models.DateTimeField):
                        assert value.utcoffset() == timedelta(0)
                    elif isinstance(model_field, models.JSONField):
                        floats: list = []
                        walk(json.loads(value), floats)
                        assert not floats, (spec.table, model_field.name)
    assert batches > 5
    assert config.events <= events < config.events + 20


@pytest.mark.unit
def test_prefetching_stops_cleanly_and_passes_errors_on() -> None:
    threads = threading.active_count()
    early = writers._prefetched(iter(range(100)), depth=2)
    assert next(early) == 0
    early.close()  # the producer is blocked on a full queue: it must not hang
    assert threading.active_count() == threads

    def failing():
        yield 1
        raise ValueError("generator broke")

    with pytest.raises(ValueError, match="generator broke"):
        list(writers._prefetched(failing()))
    assert threading.active_count() == threads


# --- Against the database -----------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db
def test_same_seed_gives_identical_rows_and_another_seed_does_not() -> None:
    seed_demo(DemoConfig(seed=7, events=1500, days=3, reset=True))
    first = snapshot()
    seed_demo(DemoConfig(seed=7, events=1500, days=3, reset=True))
    assert snapshot() == first
    seed_demo(DemoConfig(seed=8, events=1500, days=3, reset=True))
    other = snapshot()
    for table in (StopEvent, Operation, AuditTransaction, Trade, Portfolio):
        assert other[table._meta.db_table] != first[table._meta.db_table], table
    event_ids = {row[0] for row in first[StopEvent._meta.db_table]}
    assert event_ids.isdisjoint(row[0] for row in other[StopEvent._meta.db_table])
    assert all(rows for rows in first.values())


@pytest.mark.integration
@pytest.mark.django_db
def test_every_execution_is_a_valid_path_through_the_transitions() -> None:
    seed_demo(DemoConfig(events=SMALL, reset=True))
    grouped = executions()
    assert len(grouped) > SMALL // 5
    for token, events in grouped.items():
        state = None
        retries = 0
        for event in events:
            assert event.event_type in TRANSITIONS[state], (token, state, event.event_type)
            if state == StopEvent.EventType.FAILED and event.event_type == "EXECUTION_SUBMITTED":
                retries += 1  # a re-submission after a failure
            assert event.retry_count == retries <= MAX_RETRIES
            state = event.event_type
        assert state in TERMINAL_EVENTS, (token, state)
        shared = {
            (e.operation_id, e.client_id, e.symbol, e.trigger_price, e.stop_price, e.quantity,
             e.side, e.source, json.dumps(e.payload_json, sort_keys=True))
            for e in events
        }  # fmt: skip
        assert len(shared) == 1, token
        limit = Decimal(events[0].payload_json["slippage_limit_pct"])
        for i, event in enumerate(events):
            if event.event_type == StopEvent.EventType.EXECUTED:
                assert event.fill_price
                assert event.exchange_order_id
                breach = abs(event.slippage_pct) > limit
                follows = events[i + 1].event_type if i + 1 < len(events) else None
                assert (follows == StopEvent.EventType.SLIPPAGE_BREACH) == breach, token
            if event.event_type in (StopEvent.EventType.FAILED, StopEvent.EventType.BLOCKED):
                assert event.error_message


@pytest.mark.integration
@pytest.mark.django_db
def test_executions_span_midnight_and_events_arrive_late() -> None:
    seed_demo(DemoConfig(events=SMALL, reset=True))
    spanning = [
        events
        for events in executions().values()
        if events[0].occurred_at.date() != events[-1].occurred_at.date()
    ]
    assert spanning
    assert any(
        e[0].occurred_at.time() >= datetime.strptime("23:59", "%H:%M").time() for e in spanning
    )
    rows = list(StopEvent.objects.order_by("event_seq").values_list("event_seq", "occurred_at"))
    seqs = [seq for seq, _ in rows]
    assert seqs == list(range(1, len(rows) + 1)), "event_seq is the dense recording order"
    # Late: recorded (numbered) after an event that occurred more than a minute later.
    by_time = sorted(rows, key=lambda row: row[1])
    times = [at for _, at in by_time]
    later_min = [0] * len(by_time)
    running = float("inf")
    for i in range(len(by_time) - 1, -1, -1):
        running = min(running, by_time[i][0])
        later_min[i] = running
    late = 0
    for seq, at in by_time:
        j = bisect.bisect_right(times, at + timedelta(minutes=1))
        late += j < len(by_time) and later_min[j] < seq
    assert 0.005 * len(rows) < late < 0.1 * len(rows)


@pytest.mark.integration
@pytest.mark.django_db
def test_money_comes_back_as_decimal_with_the_field_exponent_and_no_float() -> None:
    seed_demo(DemoConfig(events=1000, days=2, reset=True))
    for spec in TABLES:
        decimal_fields = [f for f in spec.fields if isinstance(f, models.DecimalField)]
        json_fields = [f.name for f in spec.fields if isinstance(f, models.JSONField)]
        for row in spec.model.objects.values(*[f.name for f in decimal_fields], *json_fields):
            for f in decimal_fields:
                value = row[f.name]
                if value is not None:
                    assert isinstance(value, Decimal), (spec.table, f.name)
                    assert value.as_tuple().exponent == -f.decimal_places, (spec.table, f.name)
            floats: list = []
            for name in json_fields:
                walk(row[name], floats)
            assert not floats, spec.table
    for balances in Portfolio.objects.values_list("balances", flat=True):
        assert all(isinstance(v, str) and Decimal(v).as_tuple().exponent == -8
                   for v in balances.values())  # fmt: skip


@pytest.mark.integration
@pytest.mark.django_db
def test_data_is_realistic() -> None:
    config = DemoConfig(events=20_000, reset=True)
    seed_demo(config)
    assert Client.objects.count() == 4
    assert Strategy.objects.count() == 8
    start = datetime(2024, 12, 20, tzinfo=UTC)
    end = datetime(2024, 12, 28, tzinfo=UTC)
    days = Counter(at.date() for at in StopEvent.objects.values_list("occurred_at", flat=True))
    assert sorted(days) == [date(2024, 12, 20) + timedelta(days=i) for i in range(8)]
    assert min(days.values()) > 20_000 / 8 / 3, "events are spread over the days"
    assert Portfolio.objects.count() == 4 * 8 * 24
    outcome = Counter()
    for events in executions().values():
        outcome[events[-1].event_type] += 1
    total = sum(outcome.values())
    assert outcome[StopEvent.EventType.EXECUTED] / total > 0.8
    for kind in ("FAILED", "BLOCKED", "SLIPPAGE_BREACH"):
        assert outcome[kind] > 0, kind
    types = Counter(StopEvent.objects.values_list("event_type", flat=True))
    assert set(types) == set(StopEvent.EventType.values)
    sources = Counter(StopEvent.objects.values_list("source", flat=True))
    assert sources["ws"] > 0.7 * sum(sources.values())
    assert sources["cron"]
    assert sources["manual"]

    typical = {s: Decimal(str(spec.price)) for s, spec in SYMBOLS.items()}
    for symbol, price in StopEvent.objects.values_list("symbol", "trigger_price")[:5000]:
        assert typical[symbol] * Decimal("0.7") < price < typical[symbol] * Decimal("1.3")
    slippage = list(
        StopEvent.objects.filter(event_type="EXECUTED").values_list("slippage_pct", flat=True)
    )
    within = sum(abs(s) <= 1 for s in slippage) / len(slippage)
    assert 0.85 < within < 1
    assert max(abs(s) for s in slippage) < 50

    for op in Operation.objects.filter(status="CLOSED")[:2000]:
        long = op.side == "BUY"
        assert (op.stop_price < op.entry_price < op.target_price) == long
        assert (op.stop_price > op.entry_price > op.target_price) == (not long)
        distance = abs(op.entry_price - op.stop_price) / op.entry_price
        assert Decimal("0.002") < distance < Decimal("0.25")
        assert op.created_at < op.opened_at < op.closed_at
        assert start <= op.opened_at
        assert op.closed_at < end
        assert op.exit_price is not None
        assert op.exit_quantity == op.entry_quantity
        assert 5 < op.entry_quantity * op.entry_price < 500_000, "notional in USDC"
    for op in Operation.objects.filter(status="ACTIVE")[:200]:
        assert op.opened_at
        assert op.exit_price is None
        assert op.closed_at is None

    # Every filled order's audit row is the sum of its exchange fills, fees at 0.1% (USDC)
    # or 0.075% paid in BNB.
    fills = defaultdict(list)
    for trade in Trade.objects.all():
        fills[trade.order_id].append(trade)
    orders = AuditTransaction.objects.filter(category="trade", status="FILLED")
    assert orders.count() == len(fills)
    for order in orders:
        trades = fills[order.raw_response["orderId"]]
        assert sum(t.qty for t in trades) == order.quantity
        assert sum(t.quote_qty for t in trades) == order.total_value
        assert sum(t.commission for t in trades) == order.fee
        assert Decimal(order.raw_response["cummulativeQuoteQty"]) == order.total_value
        assert all(t.is_buyer == (order.side == "BUY") for t in trades)
        if order.fee_asset == "USDC":
            assert abs(order.fee - order.total_value / 1000) < Decimal("0.00000003")
    fee_rows = AuditTransaction.objects.filter(transaction_type="TRADING_FEE")
    assert fee_rows.exists()
    assert orders.filter(fee_asset="BNB").count() == fee_rows.count()
    for kind in ("SPOT_BUY", "SPOT_SELL", "MARGIN_BUY", "MARGIN_SELL", "STOP_LOSS_TRIGGERED",
                 "DEPOSIT", "WITHDRAWAL", "TRANSFER_TO_MARGIN", "INTEREST_CHARGED"):  # fmt: skip
        assert AuditTransaction.objects.filter(transaction_type=kind).exists(), kind
    leverage = AuditTransaction.objects.filter(transaction_type__startswith="MARGIN_")
    assert not leverage.filter(leverage__isnull=True).exists()
    executed = StopEvent.objects.filter(event_type="EXECUTED")
    order_ids = {str(o) for o in Trade.objects.values_list("order_id", flat=True)}
    assert set(executed.values_list("exchange_order_id", flat=True)) <= order_ids


@pytest.mark.integration
@pytest.mark.django_db
def test_append_continues_after_existing_rows_without_collisions() -> None:
    seed_demo(DemoConfig(events=1000, reset=True))
    before = {spec.table: spec.model.objects.count() for spec in TABLES}
    top_seq = StopEvent.objects.order_by("-event_seq").values_list("event_seq", flat=True)[0]
    # The same seed and start date again is the case most likely to collide.
    report = seed_demo(DemoConfig(events=1000))
    seed_demo(DemoConfig(events=1000, start_date=date(2024, 12, 28), days=2))
    assert Client.objects.count() == 4
    assert Strategy.objects.count() == 8
    assert report.rows["clients"] == 0
    new_seqs = list(
        StopEvent.objects.filter(event_seq__gt=top_seq)
        .order_by("event_seq")
        .values_list("event_seq", flat=True)
    )
    assert new_seqs == list(range(top_seq + 1, top_seq + 1 + len(new_seqs)))
    assert StopEvent.objects.count() == before[StopEvent._meta.db_table] + len(new_seqs)
    for spec in TABLES:
        if spec.model not in (Client, Strategy):
            assert spec.model.objects.count() > before[spec.table], spec.table
    # one kline per symbol and minute: the second run's window already had its klines
    assert Kline.objects.count() == len(SYMBOLS) * 1440 * 10
    assert StopEvent.objects.values("event_id").distinct().count() == StopEvent.objects.count()
    tokens = StopEvent.objects.values("execution_token").distinct().count()
    assert tokens == len(executions())
    ids = set(Trade.objects.values_list("symbol", "trade_id"))
    assert len(ids) == Trade.objects.count()
    # New rows get the next sequence values, not explicit ids that were just used.
    client = Client.objects.first()
    extra = Operation.objects.create(
        client=client, strategy=client.strategies.first(), symbol="BTCUSDC", side="BUY",
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    assert extra.pk > Operation.objects.exclude(pk=extra.pk).order_by("-pk")[0].pk


@pytest.mark.integration
@pytest.mark.django_db
def test_command_prints_the_summary_and_rejects_bad_arguments() -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_demo", "--reset", "--events", "400", "--days", "2",
                 "--start-date", "2024-12-20", stdout=out, stderr=err)  # fmt: skip
    text = out.getvalue()
    assert "2024-12-20 to 2024-12-21" in text
    count = StopEvent.objects.count()
    assert count >= 400
    assert re.search(rf"stop events +{count:,}\n", text)
    assert "stop events/s" in text
    assert "rows/s" in text
    assert err.getvalue() == "", "no progress bar when stderr is not a terminal"
    for args, message in [
        (["--events", "-5"], "--events must be zero or more"),
        (["--days", "0"], "--days must be at least 1"),
        (["--days", "367"], "--days must be at most 366"),
        (["--clients", "-2"], "--clients must be at least 1"),
        (["--start-date", "2024-02-30"], "--start-date: '2024-02-30' is not a date"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command("seed_demo", *args, stdout=io.StringIO())


@pytest.mark.integration
@pytest.mark.django_db
def test_klines_are_the_minutes_of_the_price_path_that_drives_the_stops() -> None:
    seed_demo(DemoConfig(events=600, days=2, reset=True))
    klines: dict[str, list[Kline]] = defaultdict(list)
    for kline in Kline.objects.order_by("symbol", "open_time"):
        klines[kline.symbol].append(kline)
    assert sorted(klines) == sorted(SYMBOLS)
    start = datetime(2024, 12, 20, tzinfo=UTC)
    for symbol, candles in klines.items():
        assert [k.open_time for k in candles] == [
            start + timedelta(minutes=i) for i in range(2 * 1440)
        ], symbol
        for previous, k in itertools.pairwise(candles):
            assert k.open == previous.close, (symbol, k.open_time)
        for k in candles:
            assert k.interval == "1m"
            assert k.close_time == k.open_time + timedelta(seconds=59, milliseconds=999)
            assert k.low <= min(k.open, k.close) <= max(k.open, k.close) <= k.high
            assert k.low > 0
            assert k.volume > 0
            assert k.number_of_trades > 0
            assert k.volume * k.low <= k.quote_asset_volume <= k.volume * k.high
            assert 0 <= k.taker_buy_base_asset_volume <= k.volume
            assert 0 <= k.taker_buy_quote_asset_volume <= k.quote_asset_volume
    # A stop caught by the websocket fires on a trade inside its minute's candle.
    by_minute = {(k.symbol, k.open_time): k for candles in klines.values() for k in candles}
    triggers = StopEvent.objects.filter(event_type="STOP_TRIGGERED", source="ws")
    assert triggers.exists()
    for event in triggers:
        k = by_minute[(event.symbol, event.occurred_at.replace(second=0, microsecond=0))]
        assert k.low <= event.trigger_price <= k.high, (event.symbol, event.occurred_at)
    # Daily volume cycle: the US afternoon trades more than the Asian night.
    hourly: dict[int, list[Decimal]] = defaultdict(list)
    for k in klines["BTCUSDC"]:
        hourly[k.open_time.hour].append(k.quote_asset_volume)
    busy = sum(sum(hourly[h]) for h in (14, 15, 16))
    quiet = sum(sum(hourly[h]) for h in (2, 3, 4))
    assert busy > Decimal("1.5") * quiet


def failure_rate_by_quintile(samples: list[tuple[float, bool]]) -> list[float]:
    """Return the share of failed samples in each fifth of the samples, by ascending key."""
    samples = sorted(samples)
    size = len(samples) // 5
    return [
        sum(failed for _, failed in samples[i * size : (i + 1) * size]) / size for i in range(5)
    ]


@pytest.mark.integration
@pytest.mark.django_db
def test_failures_and_slippage_are_likelier_in_fast_thin_markets_and_after_failures() -> None:
    """Computed from the written klines and events only, as the gold features are."""
    seed_demo(DemoConfig(events=8000, days=4, reset=True))
    closes: dict[str, dict[datetime, float]] = defaultdict(dict)
    volumes: dict[str, dict[datetime, float]] = defaultdict(dict)
    for symbol, at, close, quote in Kline.objects.values_list(
        "symbol", "open_time", "close", "quote_asset_volume"
    ):
        closes[symbol][at] = float(close)
        volumes[symbol][at] = float(quote)
    grouped = executions()
    ended: dict[int, list[tuple[datetime, bool]]] = defaultdict(list)
    for events in grouped.values():
        ended[events[0].client_id].append(
            (events[-1].occurred_at, events[-1].event_type == "FAILED")
        )
    for history in ended.values():
        history.sort()
    after_failure: dict[bool, list[bool]] = defaultdict(list)
    volatility, volume, slippage, by_hour = [], [], [], defaultdict(list)
    for events in grouped.values():
        t, symbol = events[0].occurred_at, events[0].symbol
        minute = t.replace(second=0, microsecond=0)
        window = [minute - timedelta(minutes=k) for k in range(14, -1, -1)]  # [t-15min, t)
        prices = [closes[symbol][m] for m in window if m in closes[symbol]]
        day = [minute - timedelta(minutes=k) for k in range(1, 1441)]
        traded = sum(volumes[symbol].get(m, 0.0) for m in day)
        if len(prices) < 15 or minute - timedelta(minutes=1440) < min(volumes[symbol]):
            continue  # the first day has no full 24 hours behind it
        returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
        failed = events[-1].event_type in ("FAILED", "BLOCKED")
        volatility.append((statistics.stdev(returns), failed))
        fills = [e.slippage_pct for e in events if e.event_type == "EXECUTED"]
        if fills:
            slippage.append((statistics.stdev(returns), abs(fills[0])))
        volume.append((symbol, traded, failed))
        by_hour[t.hour].append(failed)
        history = ended[events[0].client_id]
        i = bisect.bisect_left(history, (t, False))
        streak = i > 0 and history[i - 1][1] and history[i - 1][0] >= t - timedelta(hours=1)
        after_failure[streak].append(failed)
    assert len(volatility) > 1000
    fast = failure_rate_by_quintile(volatility)
    assert fast[4] > 2 * fast[0], fast
    slippage.sort()
    fifth = len(slippage) // 5
    calm_fills = [s for _, s in slippage[:fifth]]
    fast_fills = [s for _, s in slippage[-fifth:]]
    assert statistics.mean(fast_fills) > 2 * statistics.mean(calm_fills)
    assert statistics.median(fast_fills) > statistics.median(calm_fills)
    # Volume differs by symbol: compare each sample's with its symbol's median.
    medians = {
        s: statistics.median(v for symbol, v, _ in volume if symbol == s) for s, _, _ in volume
    }
    deep = failure_rate_by_quintile([(v / medians[s], failed) for s, v, failed in volume])
    assert deep[0] > 1.3 * deep[4], deep
    risky = [f for h in (0, 1, 7, 8, 13, 14) for f in by_hour[h]]
    calm = [f for h in range(24) if h not in (0, 1, 7, 8, 13, 14) for f in by_hour[h]]
    assert sum(risky) / len(risky) > 1.3 * sum(calm) / len(calm)
    rate = {streak: sum(outcomes) / len(outcomes) for streak, outcomes in after_failure.items()}
    assert rate[True] > 2 * rate[False], rate


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.integration
@pytest.mark.django_db
@pytest.mark.parametrize(("flags", "drawn"), [([], True), (["--no-progress"], False)])
def test_progress_bar_on_a_terminal_unless_disabled(flags: list[str], drawn: bool) -> None:
    err = Terminal()
    call_command(
        "seed_demo", "--reset", "--events", "300", *flags, stdout=io.StringIO(), stderr=err
    )
    assert bool(re.search(r"\d+/300 \[", err.getvalue())) == drawn


@pytest.mark.integration
@pytest.mark.django_db
def test_bulk_postgres_path_writes_the_same_rows_and_restores_the_schema(
    require_postgres: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def schema() -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                FROM pg_constraint WHERE conrelid = ANY(%(t)s::regclass[])
                UNION ALL
                SELECT tablename, indexname, indexdef FROM pg_indexes
                WHERE tablename = ANY(%(t)s)
                ORDER BY 1, 2, 3
                """,
                {"t": [spec.table for spec in TABLES]},
            )
            return cursor.fetchall()

    before = schema()
    config = DemoConfig(events=2000, reset=True)
    seed_demo(config)
    simple = snapshot()
    monkeypatch.setattr(writers, "CHILD_PROCESS_MIN_EVENTS", 0)
    monkeypatch.setattr(writers, "INDEX_REBUILD_MIN_EVENTS", 0)
    seed_demo(config)
    assert snapshot() == simple
    assert schema() == before


@pytest.mark.integration
@pytest.mark.django_db
def test_inserts_using_column_defaults_succeed_after_seeding(require_postgres: None) -> None:
    seed_demo(DemoConfig(events=300, days=1, reset=True))
    operation = Operation.objects.order_by("pk").first()
    top_seq = StopEvent.objects.order_by("-event_seq").values_list("event_seq", flat=True)[0]
    with connection.cursor() as cursor:  # as the backend inserts: event_seq from its default
        cursor.execute(
            """
            INSERT INTO stop_events (event_id, occurred_at, operation_id, client_id, symbol,
                                     event_type, payload_json, source, retry_count)
            VALUES (%s, %s, %s, %s, 'BTCUSDC', 'STOP_TRIGGERED', '{}', 'ws', 0)
            RETURNING event_seq
            """,
            [uuid.uuid4(), datetime(2025, 1, 1, tzinfo=UTC), operation.pk, operation.client_id],
        )
        assert cursor.fetchone()[0] > top_seq
    for spec in TABLES:  # and every auto-increment id continues after the seeded ones
        if spec.model is StopEvent:
            continue
        top = spec.model.objects.order_by("-pk").values_list("pk", flat=True)[0]
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [spec.table])
            assert cursor.fetchone()[0] > top, spec.table


@pytest.mark.integration
@pytest.mark.django_db
def test_command_by_default_writes_data_up_to_now() -> None:
    before = timezone.now()
    call_command("seed_demo", "--reset", "--events", "300", "--days", "2", stdout=io.StringIO())
    newest = StopEvent.objects.order_by("-occurred_at").first().occurred_at
    assert newest <= timezone.now()
    assert Kline.objects.order_by("-open_time").first().open_time > before - timedelta(minutes=2)
    first = Kline.objects.order_by("open_time").first().open_time
    assert first.date() == before.date() - timedelta(days=1)
    assert first.time() == time(0, 0)
    # No holes below the newest cursor value: the exporter would wait on each of them.
    for model, cursor in ((StopEvent, "event_seq"), (AuditTransaction, "id"), (Kline, "id"),
                          (Trade, "id"), (Portfolio, "id")):  # fmt: skip
        values = list(model.objects.order_by(cursor).values_list(cursor, flat=True))
        assert values == list(range(values[0], values[0] + len(values))), model.__name__


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (None, 8, (date(2026, 3, 3), datetime(2026, 3, 10, 14, 37, tzinfo=UTC))),
        (None, 1, (date(2026, 3, 10), datetime(2026, 3, 10, 14, 37, tzinfo=UTC))),
        ("2024-12-20", 8, (date(2024, 12, 20), None)),
    ],
)
def test_window(start, days, expected) -> None:
    from api.management.commands.seed_demo import window

    assert window(start, days, datetime(2026, 3, 10, 14, 37, 59, 5, tzinfo=UTC)) == expected
