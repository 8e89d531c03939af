"""Load the generated rows: COPY on PostgreSQL, executemany elsewhere; seed_demo itself."""

from __future__ import annotations

import gc
import io
import multiprocessing
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import psycopg
import psycopg.copy
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.db.models import Max, Min

from api.demo.core import (
    STOP_EVENTS,
    TABLES,
    Batch,
    Chunk,
    DemoConfig,
    GeneratorFailed,
    Offsets,
    TableSpec,
)
from api.demo.generator import generate
from api.models import (
    AuditTransaction,
    Client,
    ClientMembership,
    Kline,
    Operation,
    Portfolio,
    StopEvent,
    Strategy,
    Trade,
)

INDEX_REBUILD_MIN_EVENTS = 200_000  # below this, keeping indexes is cheaper than rebuilding
CHILD_PROCESS_MIN_EVENTS = 50_000  # below this, a child process costs more than it saves


@dataclass
class SeedReport:
    """What a seed_demo run wrote, and how fast."""

    config: DemoConfig
    rows: dict[str, int]
    seconds: float

    @property
    def total_rows(self) -> int:
        """Return the number of rows written to all tables."""
        return sum(self.rows.values())

    def rate(self, rows: int) -> float:
        """Return rows per second over the whole run."""
        return rows / self.seconds if self.seconds > 0 else float("inf")

    def summary_lines(self) -> list[str]:
        """Return a human-readable summary: rows per table, then the rates."""
        config = self.config
        lines = [
            f"Seeded demo data (seed {config.seed}, {config.start_date} to {config.end_date}, "
            f"{config.clients} clients{', after reset' if config.reset else ''}) "
            f"in {self.seconds:.1f} s"
        ]
        lines += [f"  {name:<20}{count:>12,}" for name, count in self.rows.items()]
        events = self.rows[STOP_EVENTS.model._meta.verbose_name_plural]
        lines.append(
            f"  {'total':<20}{self.total_rows:>12,} rows: {self.rate(events):,.0f} stop events/s,"
            f" {self.rate(self.total_rows):,.0f} rows/s"
        )
        return lines


def read_offsets() -> Offsets:
    """Return the maxima already in the tables, and the clients/strategies to reuse."""
    events = StopEvent.objects.aggregate(seq=Max("event_seq"))
    trades = Trade.objects.aggregate(id=Max("id"), trade=Max("trade_id"), order=Max("order_id"))

    def top(model: type[models.Model]) -> int:
        return model.objects.aggregate(top=Max("id"))["top"] or 0

    return Offsets(
        client=top(Client),
        strategy=top(Strategy),
        operation=top(Operation),
        event_seq=events["seq"] or 0,
        audit=top(AuditTransaction),
        trade=trades["id"] or 0,
        trade_id=trades["trade"] or 0,
        order_id=trades["order"] or 0,
        portfolio=top(Portfolio),
        kline=top(Kline),
        kline_spans={
            symbol: (_us(first), _us(last))
            for symbol, first, last in Kline.objects.values("symbol")
            .annotate(first=Min("open_time"), last=Max("open_time"))
            .values_list("symbol", "first", "last")
        },
        clients_by_name=dict(Client.objects.values_list("name", "id")),
        strategies_by_key={
            (client_id, name): pk
            for pk, client_id, name in Strategy.objects.values_list("id", "client_id", "name")
        },
    )


def _us(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _InsertWriter:
    """Insert generated rows with executemany, adapting values as the ORM would."""

    def __init__(self) -> None:
        kinds = models.UUIDField | models.DateTimeField  # JSON columns already hold text
        self.prepare: dict[TableSpec, list[tuple[int, Callable[[Any], Any]]]] = {
            spec: [
                (i, lambda v, f=f: f.get_db_prep_save(v, connection))
                for i, f in enumerate(spec.fields)
                if isinstance(f, kinds)
            ]
            for spec in TABLES
        }

    def write(self, spec: TableSpec, rows: list[tuple]) -> None:
        """Insert rows into the table."""
        prepare = self.prepare[spec]
        adapted = []
        for row in rows:
            values = list(row)
            for i, fn in prepare:
                values[i] = fn(values[i])
            adapted.append(values)
        quote = connection.ops.quote_name
        sql = "INSERT INTO {} ({}) VALUES ({})".format(
            quote(spec.table),
            ", ".join(quote(c) for c in spec.columns),
            ", ".join(["%s"] * len(spec.columns)),
        )
        with connection.cursor() as cursor:
            for start in range(0, len(adapted), 10_000):
                cursor.executemany(sql, adapted[start : start + 10_000])


class _PostgresWriter:
    """Stream rows into PostgreSQL with COPY (psycopg 3)."""

    def write(self, spec: TableSpec, rows: list[tuple] | bytes) -> None:
        """COPY rows, or COPY text already formatted by :func:`_format_copy`, into the table."""
        quote = connection.ops.quote_name
        columns = ", ".join(quote(c) for c in spec.columns)
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {quote(spec.table)} ({columns}) FROM STDIN") as copy,
        ):
            if isinstance(rows, bytes):
                copy.write(rows)
            else:
                write_row = copy.write_row
                for row in rows:
                    write_row(row)


def _format_copy(cursor: psycopg.Cursor, spec: TableSpec, rows: list[tuple]) -> bytes:
    """Return the rows as COPY text, formatted by psycopg without touching the server."""
    buffer = io.BytesIO()
    with psycopg.copy.Copy(cursor, binary=False, writer=psycopg.copy.FileWriter(buffer)) as copy:
        write_row = copy.write_row
        for row in rows:
            write_row(row)
    return buffer.getvalue()


@contextmanager
def _constraints_suspended(tables: Iterable[str]) -> Iterator[None]:
    """Drop the tables' foreign keys and plain indexes; re-create them on exit.

    PostgreSQL's advice for bulk loads: building an index once over the loaded rows and
    validating a foreign key with one join are far cheaper than maintaining them row by
    row. Primary keys and unique constraints stay (re-adding them would make the serial
    tail longer than what the load saves). Used only inside the transaction of a reset,
    so a failed load rolls the drops back with everything else.
    """
    quote = connection.ops.quote_name
    names = list(tables)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
            FROM pg_constraint
            WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])
            ORDER BY conname
            """,
            [names],
        )
        foreign_keys = cursor.fetchall()
        cursor.execute(
            """
            SELECT ci.relname, pg_get_indexdef(ix.indexrelid)
            FROM pg_index ix
            JOIN pg_class ci ON ci.oid = ix.indexrelid
            WHERE ix.indrelid = ANY(%s::regclass[])
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid)
            ORDER BY ci.relname
            """,
            [names],
        )
        indexes = cursor.fetchall()
        for table, name, _ in foreign_keys:
            cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {quote(name)}")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        for table, name, definition in foreign_keys:
            cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (the rows are acyclic; reference counting frees
    them). Otherwise every collection walks the millions of row objects alive in the
    chunks, which costs a third of the generation time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _prefetched(batches: Iterator[Batch], depth: int = 3) -> Iterator[Batch]:
    """Run the generator in a thread so that generating overlaps loading."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Queue an item unless the consumer has gone; return whether it was queued."""
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not offer(batch):
                    return
            offer(done)
        except BaseException as exc:
            offer(exc)

    worker = threading.Thread(target=produce, name="seed_demo-generator", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _in_process(config: DemoConfig, offsets: Offsets) -> Iterator[Chunk]:
    """Yield generated chunks as rows, generated by a thread ahead of the loader."""
    for batch in _prefetched(generate(config, offsets)):
        parts = [(spec, len(rows), rows) for spec, rows in batch.rows.items() if rows]
        yield batch.events, parts


def _in_child_process(config: DemoConfig, offsets: Offsets) -> Iterator[Chunk]:
    """Yield generated chunks as COPY text, generated and formatted by a child process.

    Generating and formatting are pure Python: in the loading process they would share
    one core through the GIL, while here the child keeps one core busy and the server
    the other. The child only formats: rows reach the database through this process's
    connection, inside its transaction. The pipe holds one chunk, so memory stays flat.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_format_chunks,
        args=(config, offsets, connection.get_connection_params(), sender),
        name="seed_demo-generator",
        daemon=True,
    )
    child.start()
    sender.close()
    try:
        while True:
            try:
                message = receiver.recv()
            except EOFError:
                raise GeneratorFailed(f"the generator process died ({child.exitcode})") from None
            if message is None:
                return
            if isinstance(message, str):
                raise GeneratorFailed(f"the generator process failed:\n{message}")
            events, parts = message
            yield events, [(TABLES[index], count, text) for index, count, text in parts]
    finally:
        receiver.close()
        if child.is_alive():
            child.terminate()
        child.join()


def _format_chunks(
    config: DemoConfig, offsets: Offsets, params: dict[str, Any], sender: Connection
) -> None:
    """Child process: generate the run and send each chunk as COPY text per table."""
    try:
        gc.disable()
        # A connection of our own gives Copy its adapters; no statement is ever sent.
        with psycopg.connect(**params) as formatting:
            cursor = formatting.cursor()
            for batch in generate(config, offsets):
                parts = [
                    (index, len(rows), _format_copy(cursor, spec, rows))
                    for index, (spec, rows) in enumerate(batch.rows.items())
                    if rows
                ]
                sender.send((batch.events, parts))
        sender.send(None)
    except BaseException:
        sender.send(traceback.format_exc())
    finally:
        sender.close()


def seed_demo(config: DemoConfig, progress: Callable[[int], object] | None = None) -> SeedReport:
    """Generate the demo data described by ``config`` into the default database.

    With ``reset`` the source tables are emptied first and the whole load is one
    transaction; otherwise rows are appended, one transaction per chunk, with ids and
    event_seq continuing after what the tables hold. ``progress`` is called with the
    number of StopEvents loaded by each chunk.
    """
    started = time.perf_counter()
    counts = {spec.model._meta.verbose_name_plural: 0 for spec in TABLES}
    postgres = connection.vendor == "postgresql"
    with _gc_paused(), transaction.atomic() if config.reset else nullcontext():
        if config.reset:
            _empty_tables()
        offsets = read_offsets()
        writer = _PostgresWriter() if postgres else _InsertWriter()
        rebuild = postgres and config.reset and config.events >= INDEX_REBUILD_MIN_EVENTS
        suspended = (
            _constraints_suspended([spec.table for spec in TABLES]) if rebuild else nullcontext()
        )
        parallel = postgres and config.events >= CHILD_PROCESS_MIN_EVENTS
        chunks = (_in_child_process if parallel else _in_process)(config, offsets)
        with suspended, closing(chunks):
            for events, parts in chunks:
                with nullcontext() if config.reset else transaction.atomic():
                    _write_chunk(writer, parts, counts, postgres)
                if progress is not None:
                    progress(events)
        _reset_sequences()
    return SeedReport(config=config, rows=counts, seconds=time.perf_counter() - started)


def _write_chunk(
    writer: _InsertWriter | _PostgresWriter,
    parts: list[tuple[TableSpec, int, list[tuple] | bytes]],
    counts: dict[str, int],
    postgres: bool,
) -> None:
    """Write one chunk's rows, parents first, and count them."""
    if postgres:  # check foreign keys at each COPY: the queue of deferred checks stays small
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for spec, count, rows in parts:
        writer.write(spec, rows)
        counts[spec.model._meta.verbose_name_plural] += count
    if postgres:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _empty_tables() -> None:
    # Memberships point at the clients being replaced: a reset empties them too.
    tables = [ClientMembership._meta.db_table, *(spec.table for spec in reversed(TABLES))]
    statements = connection.ops.sql_flush(no_style(), tables, reset_sequences=True)
    connection.ops.execute_sql_flush(statements)


def _reset_sequences() -> None:
    """Move every sequence of the seeded tables past the explicit values just inserted.

    Django's reset covers the auto-increment ids; on PostgreSQL any other column fed by a
    sequence it owns (``stop_events.event_seq``) needs the same, or the next insert that
    uses the column default collides with a seeded row.
    """
    tables = [spec.table for spec in TABLES]
    if connection.vendor != "postgresql":
        statements = connection.ops.sequence_reset_sql(no_style(), [s.model for s in TABLES])
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT d.refobjid::regclass::text, a.attname, d.objid::regclass::text
            FROM pg_depend d
            JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
            JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_class'::regclass AND d.refobjid = ANY(%s::regclass[])
              AND d.deptype IN ('a', 'i')
            ORDER BY 1, 2
            """,
            [tables],
        )
        for table, column, sequence in cursor.fetchall():
            cursor.execute(
                f"SELECT setval(%s, COALESCE(MAX({quote(column)}), 1), MAX({quote(column)})"
                f" IS NOT NULL) FROM {quote(table)}",
                [sequence],
            )
