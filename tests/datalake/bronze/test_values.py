"""Any value the database stores reaches bronze as stored, or quarantine with a reason.

Runs on the configured database (SQLite or PostgreSQL); the COPY-specific tests need
PostgreSQL.
"""

import subprocess
import sys
import textwrap
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.db import DatabaseError, connection

from api.models import StopEvent
from datalake.bronze import source as bronze_source
from datalake.bronze.exporter import export_dataset
from datalake.bronze.verify import verify_dataset
from datalake.locks import _advisory_key
from datalake.models import ExportCursor, JobRun
from tests import factories
from tests.lake_helpers import bronze_rows, read_lake, source_rows

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]

STACK_TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/app/robson/stops.py", line 214, in execute\n'
    "    order = client.create_order(symbol=symbol, side=side, quantity=qty)\n"
    'binance.exceptions.BinanceAPIException: APIError(code=-2010): "Account has '
    'insufficient balance", retry=3\n'
)
AWKWARD_TEXTS = [
    STACK_TRACE,
    "windows\r\nline\r\nends\r\n",
    "bare\rcarriage return",
    'quotes " and "" and, commas,, and \'single\'',
    "tab\tseparated\tvalues",
    "back\\slash \\N \\n \\\\ and \\",
    "\\N",
    "",
    "emoji 🚀📉 and accents éàü 中文",
    "control \x01\x02\x07\x0b\x0c\x1b\x7f characters",
    "\n",
    "trailing newline\n\n",
]


def raw_sql(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def small_copy_segments(monkeypatch):
    """Make COPY segments and parser blocks tiny, so that a few MB span many of each."""
    monkeypatch.setattr(bronze_source, "COPY_SEGMENT_BYTES", 64 << 10, raising=False)
    monkeypatch.setattr(bronze_source, "PARSE_BLOCK_BYTES", 4 << 10, raising=False)


def test_any_text_reaches_bronze_byte_for_byte(lake, small_copy_segments):
    """Multi-line and awkward texts, and one 5 MB text, in batches of many COPY segments."""
    texts = [
        t if i < len(AWKWARD_TEXTS) else f"{t} #{i}" for i, t in enumerate(AWKWARD_TEXTS * 250)
    ]
    texts[1500] = ("5 MB line\n" + "x" * 1023) * 5 * 1024  # larger than a COPY segment
    texts[2999] = None
    events = factories.events(
        factories.operation(),
        range(1, len(texts) + 1),
        step=timedelta(milliseconds=10),
        payload_json={"trace": STACK_TRACE, "emoji": "🚀", "crlf": "a\r\nb"},
    )
    for event, text in zip(events, texts, strict=True):
        event.error_message = text
    StopEvent.objects.bulk_update(events, ["error_message"], batch_size=500)
    result = export_dataset("events", batch_size=2000)
    assert (result.status, result.rows, result.rejected) == (JobRun.Status.SUCCEEDED, 3000, 0)
    exported = {r["event_seq"]: r["error_message"] for r in bronze_rows(lake, "events")}
    assert sorted(exported) == list(range(1, len(texts) + 1))
    # Name the rows that differ: a 5 MB value is no assertion message.
    assert [seq for seq, text in enumerate(texts, start=1) if exported[seq] != text] == []
    assert len(exported[1501]) == len(texts[1500])
    source = {r["event_seq"]: r for r in source_rows("events")}
    assert [
        r["event_seq"] for r in bronze_rows(lake, "events") if r != source[r["event_seq"]]
    ] == []
    assert verify_dataset("events", lake).ok


@pytest.fixture
def unconstrained_money(is_postgres):
    """On PostgreSQL, let stop_events.fill_price hold any numeric (as another backend's
    source table may); SQLite's columns hold anything already."""
    if is_postgres:
        raw_sql("ALTER TABLE stop_events ALTER COLUMN fill_price TYPE numeric")
    yield
    if is_postgres:
        raw_sql("DELETE FROM stop_events")
        raw_sql("ALTER TABLE stop_events ALTER COLUMN fill_price TYPE numeric(20, 8)")


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ("NaN", "fill_price: 'NaN' is not a decimal(20,8)"),
        ("123456789012345678901234.5", None),  # too many digits: the value names itself
        ("0.123456789", "fill_price: '0.123456789' is not a decimal(20,8)"),
        ("Infinity", None),
    ],
    ids=["nan", "too-many-digits", "too-many-decimals", "infinity"],
)
def test_a_decimal_bronze_cannot_hold_is_quarantined_and_the_cursor_moves_past(
    lake, unconstrained_money, is_postgres, stored, reason
):
    op = factories.operation()
    factories.events(op, range(1, 6), fill_price=Decimal("95000.5"))
    raw_sql(f"UPDATE stop_events SET fill_price = '{stored}' WHERE event_seq = 3")
    result = export_dataset("events")
    assert (result.status, result.rows, result.rejected) == (JobRun.Status.SUCCEEDED, 4, 1)
    assert result.cursor_end == 5
    run = JobRun.objects.get(pk=result.run_id)
    assert (run.rows_out, run.rows_rejected, run.rows_in) == (4, 1, 5)
    assert [r["event_seq"] for r in bronze_rows(lake, "events")] == [1, 2, 4, 5]
    (rejected,) = read_lake(lake, "quarantine/events/").to_pylist()
    assert rejected["event_seq"] == 3
    assert rejected["fill_price"] is None
    assert rejected["_reject_reason"].startswith("fill_price: '")
    assert rejected["_reject_reason"].endswith("' is not a decimal(20,8)")
    if reason is not None:
        assert rejected["_reject_reason"] == reason
    assert verify_dataset("events", lake).ok
    # Nothing blocks the next export either.
    factories.events(op, [6], start=factories.T0 + timedelta(hours=1))
    later = export_dataset("events")
    assert (later.rows, later.rejected, later.cursor_end) == (1, 0, 6)


@pytest.mark.parametrize(
    ("dataset", "table", "column", "make"),
    [
        ("orders", "api_audit_transaction", "price", lambda op: factories.audit(op)),
        ("trades", "api_trade", "commission", lambda op: factories.trade(op)),
        ("portfolio", "api_portfolio", "cash", lambda op: factories.portfolio(op)),
    ],
)
def test_a_nan_in_any_dataset_is_quarantined(lake, dataset, table, column, make):
    op = factories.operation()
    bad = make(op)
    make(op)
    raw_sql(f"UPDATE {table} SET {column} = 'NaN' WHERE id = %s", [bad.pk])
    result = export_dataset(dataset)
    assert (result.status, result.rows, result.rejected) == (JobRun.Status.SUCCEEDED, 1, 1)
    (rejected,) = read_lake(lake, f"quarantine/{dataset}/").to_pylist()
    assert rejected["_reject_reason"] == f"{column}: 'NaN' is not a decimal(20,8)"
    assert verify_dataset(dataset, lake).ok


def test_an_infinite_timestamp_is_quarantined(lake, is_postgres):
    factories.events(factories.operation(), range(1, 4))
    stored = "infinity" if is_postgres else "not a date"
    raw_sql(f"UPDATE stop_events SET occurred_at = '{stored}' WHERE event_seq = 2")
    result = export_dataset("events")
    assert (result.rows, result.rejected, result.cursor_end) == (2, 1, 3)
    (rejected,) = read_lake(lake, "quarantine/events/").to_pylist()
    assert rejected["_reject_reason"] == f"occurred_at: '{stored}' is not a timestamp[us, UTC]"
    assert rejected["date"] == "unknown"


JSON_TEXTS = [
    '"a JSON string"',
    "12.5",
    "0.12345678901234567890",
    '{"z": 1, "a": [0.12345678901234567890, {"nested": "line\\nbreak"}], "m": null}',
    "[]",
    "null",
]


def test_json_is_kept_as_the_database_stores_it(lake):
    op = factories.operation()
    factories.events(op, range(1, len(JSON_TEXTS) + 1))
    audits = [factories.audit(op) for _ in JSON_TEXTS]
    portfolios = [factories.portfolio(op) for _ in JSON_TEXTS]
    for i, text in enumerate(JSON_TEXTS):
        raw_sql("UPDATE stop_events SET payload_json = %s WHERE event_seq = %s", [text, i + 1])
        raw_sql(
            "UPDATE api_audit_transaction SET raw_response = %s WHERE id = %s", [text, audits[i].pk]
        )
        raw_sql("UPDATE api_portfolio SET balances = %s WHERE id = %s", [text, portfolios[i].pk])
    for dataset, table, column, cursor in (
        ("events", "stop_events", "payload_json", "event_seq"),
        ("orders", "api_audit_transaction", "raw_response", "id"),
        ("portfolio", "api_portfolio", "balances", "id"),
    ):
        result = export_dataset(dataset)
        assert (result.rows, result.rejected) == (len(JSON_TEXTS), 0)
        stored = dict(raw_sql(f"SELECT {cursor}, CAST({column} AS text) FROM {table}"))
        exported = read_lake(lake, f"bronze/{dataset}/").to_pylist()
        assert {r[cursor]: r[column] for r in exported} == stored
        texts = sorted(stored.values())
        if connection.vendor == "sqlite":
            assert texts == sorted(JSON_TEXTS)  # SQLite keeps the text as written
        assert "0.12345678901234567890" in texts  # no float on the way
        assert '"a JSON string"' in texts


def lock_connection() -> psycopg.Connection:
    """Return a second session on the test database, outside Django."""
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"],
        password=db["PASSWORD"] or None, autocommit=True,
    )  # fmt: skip


def lock_is_free(name: str) -> bool:
    """Return whether another session can take the advisory lock `name` now."""
    with lock_connection() as other:
        key = _advisory_key(name)
        taken = other.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]
        other.execute("SELECT pg_advisory_unlock(%s)", [key])
    return taken


def test_an_error_inside_copy_fails_the_run_releases_the_lock_and_exits(
    lake, require_postgres, subprocess_env, tmp_path
):
    """An exporter whose COPY breaks off mid-stream ends, FAILED, and frees the dataset."""
    factories.events(factories.operation(), range(1, 301))
    script = textwrap.dedent(
        """
        import sys
        import django
        import psycopg

        django.setup()
        read = psycopg.Copy.read
        calls = 0

        def failing_read(self):
            global calls
            calls += 1
            if calls == 100:  # the server is still sending rows
                raise ConnectionError("injected: the COPY broke off")
            return read(self)

        psycopg.Copy.read = failing_read
        from datalake.bronze.exporter import export_dataset

        try:
            export_dataset("events")
        except ConnectionError as exc:
            print(f"export failed: {exc}")
            sys.exit(3)
        """
    )
    env = {
        **subprocess_env,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATALAKE_URI": str(tmp_path / "lake"),
        "DATALAKE_WORK_DIR": str(tmp_path / "work"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "export failed: injected" in done.stdout
    run = JobRun.objects.get()
    assert run.status == JobRun.Status.FAILED
    assert "injected: the COPY broke off" in run.error
    assert lock_is_free("bronze.export.events")
    assert not ExportCursor.objects.filter(high_watermark__gt=0).exists()
    result = export_dataset("events")
    assert (result.status, result.rows) == (JobRun.Status.SUCCEEDED, 300)
    assert bronze_rows(lake, "events") == source_rows("events")


def test_an_error_inside_copy_leaves_this_connection_usable(lake, require_postgres, monkeypatch):
    """In-process: after the failure the same Django connection works, and the lock is free."""
    factories.events(factories.operation(), range(1, 301))
    read = psycopg.Copy.read
    calls = {"n": 0}

    def failing_read(self):
        calls["n"] += 1
        if calls["n"] == 100:
            raise ConnectionError("injected: the COPY broke off")
        return read(self)

    monkeypatch.setattr(psycopg.Copy, "read", failing_read)
    with pytest.raises(ConnectionError):
        export_dataset("events")
    monkeypatch.setattr(psycopg.Copy, "read", read)
    assert JobRun.objects.get().status == JobRun.Status.FAILED
    assert raw_sql("SELECT 1") == [(1,)]
    assert lock_is_free("bronze.export.events")
    assert export_dataset("events").rows == 300


def test_sqlite_blobs_in_a_text_column_are_text_or_quarantined(lake, is_postgres):
    if is_postgres:
        pytest.skip("PostgreSQL's text columns hold only text")
    factories.events(factories.operation(), range(1, 4))
    raw_sql("UPDATE stop_events SET error_message = X'c3a9e282ac' WHERE event_seq = 1")
    raw_sql("UPDATE stop_events SET error_message = X'ff00fe' WHERE event_seq = 2")
    result = export_dataset("events")
    assert (result.rows, result.rejected, result.cursor_end) == (2, 1, 3)
    assert [r["error_message"] for r in bronze_rows(lake, "events")] == ["é€", None]
    (rejected,) = read_lake(lake, "quarantine/events/").to_pylist()
    assert rejected["_reject_reason"] == "error_message: b'\\xff\\x00\\xfe' is not a string"


def test_a_connection_killed_inside_copy_fails_the_run_and_frees_the_lock(
    lake, require_postgres, monkeypatch
):
    """The server ends the session mid-COPY: the run is still recorded FAILED."""
    # Enough rows that the server is still sending when its session is ended.
    factories.events(factories.operation(), range(1, 20_001), step=timedelta(milliseconds=1))
    read = psycopg.Copy.read
    calls = {"n": 0}

    def read_then_get_killed(self):
        calls["n"] += 1
        if calls["n"] == 100:
            with lock_connection() as other:
                other.execute("SELECT pg_terminate_backend(%s)", [self.connection.info.backend_pid])
        return read(self)

    monkeypatch.setattr(psycopg.Copy, "read", read_then_get_killed)
    with pytest.raises((DatabaseError, psycopg.Error), match="terminating connection"):
        export_dataset("events")
    assert calls["n"] > 100  # the session ended during the COPY
    monkeypatch.setattr(psycopg.Copy, "read", read)
    run = JobRun.objects.get()
    assert run.status == JobRun.Status.FAILED
    assert "terminating connection" in run.error
    assert lock_is_free("bronze.export.events")
    assert export_dataset("events").rows == 20_000
