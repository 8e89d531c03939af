"""PostgreSQL: a transaction that takes event_seq N and commits after N+1 was exported.

A cursor of "greater than the last value exported" would skip row N forever. The
exporter keeps N as an open gap, looks for it again on every run, and closes the gap
only once the snapshot proves no transaction that could fill it is still running.
"""

import threading
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from django.db import connection

from datalake.bronze.exporter import export_dataset
from datalake.bronze.verify import verify_dataset
from datalake.models import ExportCursor
from tests import factories
from tests.lake_helpers import bronze_rows, source_rows

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

INSERT = """
INSERT INTO stop_events (event_id, occurred_at, operation_id, client_id, symbol, event_type,
                         payload_json, source, retry_count, quantity)
VALUES (%s, %s, %s, %s, 'BTCUSDC', 'STOP_TRIGGERED', '{}', 'ws', 0, 1.5)
RETURNING event_seq
"""


@pytest.fixture
def second_connection():
    """Open psycopg connections to the test database; closed (rolled back) at teardown,
    so a failing test never leaves a transaction that blocks the database flush."""
    opened = []

    def connect() -> psycopg.Connection:
        db = connection.settings_dict
        conn = psycopg.connect(
            host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"],
            password=db["PASSWORD"] or None,
        )  # fmt: skip
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


def insert(cursor, op) -> int:
    cursor.execute(INSERT, [uuid.uuid4(), datetime.now(UTC), op.pk, op.client_id])
    return cursor.fetchone()[0]


@pytest.fixture
def op(require_postgres):
    with connection.cursor() as cursor:  # the database flush between tests keeps sequences
        cursor.execute("ALTER SEQUENCE stop_events_event_seq_seq RESTART WITH 1")
    return factories.operation()


def test_row_committed_after_a_later_row_was_exported_is_not_lost(lake, op, second_connection):
    late = second_connection()  # a transaction that takes its number first...
    with connection.cursor() as cursor:
        early_seq = insert(late.cursor(), op)
        later_seq = insert(cursor, op)  # ...and one that commits first (autocommit)
    assert later_seq > early_seq

    first = export_dataset("events")
    assert first.cursor_end == later_seq
    assert [r["event_seq"] for r in bronze_rows(lake, "events")] == [later_seq]
    gap = ExportCursor.objects.get(dataset="events").gaps
    assert [(g["lo"], g["hi"]) for g in gap] == [(early_seq, early_seq)]

    still_open = export_dataset("events")  # the transaction is still running: keep waiting
    assert (still_open.rows, still_open.open_gaps) == (0, 1)

    late.commit()
    second = export_dataset("events")
    assert (second.rows, second.open_gaps) == (1, 0)
    assert bronze_rows(lake, "events") == source_rows("events")
    assert verify_dataset("events", lake).ok


def test_gap_of_a_rolled_back_transaction_is_closed(lake, op, second_connection):
    aborted = second_connection()
    with connection.cursor() as cursor:
        insert(aborted.cursor(), op)
        insert(cursor, op)
    assert export_dataset("events").open_gaps == 1
    aborted.rollback()
    final = export_dataset("events")
    assert (final.rows, final.open_gaps) == (0, 0)
    assert bronze_rows(lake, "events") == source_rows("events")


# The quantity expression waits for an advisory lock the test holds: the INSERT has drawn
# event_seq (column default, evaluated first) but has not written the row, so its
# transaction has no transaction id yet, only a virtual one. (nextval() takes an xid only
# when it WAL-logs the sequence: on the first draw after a restart or a checkpoint, then
# once every 32 values; the test draws once before to be in the common case.)
HELD_INSERT = """
INSERT INTO stop_events (event_id, occurred_at, operation_id, client_id, symbol, event_type,
                         payload_json, source, retry_count, quantity)
VALUES (%s, %s, %s, %s, 'BTCUSDC', 'STOP_TRIGGERED', '{}', 'ws', 0,
        1.5 + length(pg_advisory_xact_lock(%s)::text))
RETURNING event_seq
"""
HOLD_KEY = 4_242_001


def wait_until_blocked(cursor, pid: int) -> None:
    """Wait (bounded) until backend `pid` waits for the advisory lock."""
    for _ in range(500):
        cursor.execute(
            "SELECT count(*) FROM pg_locks"
            " WHERE pid = %s AND locktype = 'advisory' AND NOT granted",
            [pid],
        )
        if cursor.fetchone()[0]:
            return
        time.sleep(0.01)
    raise AssertionError("the held INSERT never reached the advisory lock")


def test_value_drawn_but_not_yet_written_is_not_lost(lake, op, second_connection):
    with connection.cursor() as cursor:
        first_seq = insert(cursor, op)  # logs the sequence ahead: the next draws take no xid
    blocker = second_connection()
    blocker.autocommit = True
    blocker.execute("SELECT pg_advisory_lock(%s)", [HOLD_KEY])
    held = second_connection()
    held_pid = held.info.backend_pid
    outcome: dict = {}

    def run_held_insert() -> None:
        try:
            with held.cursor() as cursor:
                cursor.execute(
                    HELD_INSERT, [uuid.uuid4(), datetime.now(UTC), op.pk, op.client_id, HOLD_KEY]
                )
                outcome["seq"] = cursor.fetchone()[0]
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=run_held_insert)
    thread.start()
    try:
        with connection.cursor() as cursor:
            wait_until_blocked(cursor, held_pid)
            cursor.execute("SELECT backend_xid FROM pg_stat_activity WHERE pid = %s", [held_pid])
            assert cursor.fetchone()[0] is None  # no xid: invisible to snapshot xip lists
            cursor.execute("SELECT last_value FROM stop_events_event_seq_seq")
            drawn = cursor.fetchone()[0]
            later_seq = insert(cursor, op)  # commits at once (autocommit)
        assert first_seq + 1 == drawn == later_seq - 1

        first = export_dataset("events")
        assert first.cursor_end == later_seq
        assert [r["event_seq"] for r in bronze_rows(lake, "events")] == [first_seq, later_seq]
        still_open = export_dataset("events")
        assert (still_open.rows, still_open.open_gaps) == (0, 1)
    finally:
        blocker.execute("SELECT pg_advisory_unlock(%s)", [HOLD_KEY])
        thread.join(timeout=30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["seq"] == drawn
    held.commit()

    final = export_dataset("events")
    assert (final.rows, final.open_gaps) == (1, 0)
    seqs = [r["event_seq"] for r in bronze_rows(lake, "events")]
    assert sorted(seqs) == [first_seq, drawn, later_seq]
    assert bronze_rows(lake, "events") == source_rows("events")
    assert verify_dataset("events", lake).ok


def test_a_caching_sequence_is_reported(lake, op, caplog):
    with connection.cursor() as cursor:
        cursor.execute("ALTER SEQUENCE stop_events_event_seq_seq CACHE 20")
    try:
        export_dataset("events")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER SEQUENCE stop_events_event_seq_seq CACHE 1")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "events: the sequence of stop_events.event_seq has CACHE 20; values drawn out of"
        " order by another session can be missed once their gap closes"
    ]
    caplog.clear()
    export_dataset("events")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
