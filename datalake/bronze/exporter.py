"""Incremental, exactly-once export of source tables to bronze Parquet.

Per dataset, under a lock the database releases if the holder dies:

1. Complete any batch a previous run planned but did not commit (roll forward: publish
   the files that are missing, never rewrite one that exists; one that exists must be
   the planned file, else the lake is another database's: LakeMismatch), then commit it.
2. Read the next rows after the cursor's high watermark, plus the rows now visible in
   the cursor's open gaps (values a transaction still open at an earlier export may
   have committed since). On PostgreSQL the read runs in one REPEATABLE READ snapshot,
   between two listings of the transactions alive, which say when a gap can no longer
   be filled (`datalake.bronze.gaps`).
3. Split the rows by contract (good rows / quarantine) and by partition; write the
   Parquet files locally; record the batch (its exact cursor values and files) in the
   database as PLANNED.
4. Publish each file atomically with its `_metadata/` manifest.
5. Commit: the batch becomes COMMITTED and the cursor moves, in one transaction.

A crash anywhere leaves either nothing planned (step 2 is simply redone) or a planned
batch that step 1 of the next run completes: every source row lands exactly once.
"""

import hashlib
import json
import logging
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from datalake import faults
from datalake.bronze import gaps, ranges
from datalake.bronze.contracts import REASON_COLUMN, check
from datalake.bronze.schemas import SCHEMA_VERSION, Dataset
from datalake.bronze.source import (
    Source,
    first_cursor_at_or_after,
    get_source,
    rows_after,
    rows_in,
)
from datalake.conf import app_settings
from datalake.locks import ConcurrentRun, exclusive
from datalake.models import ExportBatch, ExportCursor, JobRun
from datalake.storage import get_storage
from datalake.storage.base import Storage

logger = logging.getLogger(__name__)

PARQUET_COMPRESSION = "zstd"

# jemalloc with immediate decay hands freed batch memory back to the OS, which keeps the
# exporter's peak memory flat however many batches a run has.
try:
    pa.set_memory_pool(pa.jemalloc_memory_pool())
    pa.jemalloc_set_decay_ms(0)
except NotImplementedError:  # a pyarrow built without jemalloc
    pass


class ExportError(Exception):
    """The export cannot proceed; the message says why."""


class LakeMismatch(ExportError):
    """The lake holds, under a name this export publishes, something this database did
    not write: the lake belongs to another database (or was restored out of step)."""

    def __init__(self, key: str, message: str = "") -> None:
        self.key = key
        super().__init__(
            message
            or f"{key} already exists with a different checksum:"
            " this lake was written by another database"
        )


@dataclass
class ExportResult:
    """What one dataset's export did."""

    dataset: str
    status: str = JobRun.Status.SUCCEEDED
    rows: int = 0
    rejected: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    cursor_start: int = 0
    cursor_end: int = 0
    open_gaps: int = 0
    run_id: int | None = None
    message: str = ""
    pending: int | None = None  # dry run only: rows that would be read


@dataclass
class PlannedFile:
    key: str
    kind: str  # "data" or "quarantine"
    partition: dict[str, str]
    rows: int
    bytes: int
    sha256: str
    min_cursor: int
    max_cursor: int
    local_path: str = field(default="", repr=False)

    def as_json(self) -> dict:
        data = dict(self.__dict__)
        data.pop("local_path")
        return data


# -- Pure helpers --------------------------------------------------------------------------


def partition_keys(dataset: Dataset, table: pa.Table) -> pa.Array:
    """Return each row's partition path, e.g. `client_id=3/date=2024-12-27`."""
    # A null partition value (only a quarantined row can have one) goes to `unknown`.
    parts = [
        pc.binary_join_element_wise(
            f"{name}=", pc.fill_null(pc.cast(table[name], pa.string()), "unknown"), ""
        )
        for name in dataset.partition_by
    ]
    dates = pc.cast(pc.cast(table[dataset.time_column], pa.date32()), pa.string())
    parts.append(pc.binary_join_element_wise("date=", pc.fill_null(dates, "unknown"), ""))
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "/")


def split_by_partition(dataset: Dataset, table: pa.Table) -> list[tuple[str, pa.Table]]:
    """Return (partition path, rows) pairs sorted by path, rows sorted by cursor."""
    if table.num_rows == 0:
        return []
    cursor = table[dataset.cursor]
    if pc.any(pc.less(cursor[1:], cursor[:-1])).as_py():  # only gap rows come unordered
        table = table.sort_by(dataset.cursor)
    keys = partition_keys(dataset, table)
    return [(key, table.filter(pc.equal(keys, key))) for key in sorted(pc.unique(keys).to_pylist())]


def gap_ranges(gaps: list[dict]) -> list[ranges.Range]:
    """Return the [lo, hi] ranges of the cursor's gap records."""
    return [[gap["lo"], gap["hi"]] for gap in gaps]


def manifest_key(file_key: str) -> str:
    """Return the `_metadata/` manifest key of a data file key."""
    head, _, name = file_key.rpartition("/")
    return f"{head}/_metadata/{name.removesuffix('.parquet')}.json"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- The exporter ----------------------------------------------------------------------


class BronzeExporter:
    """Export one dataset; see the module docstring for the protocol."""

    def __init__(
        self,
        name: str,
        *,
        storage: Storage | None = None,
        batch_size: int | None = None,
        until: datetime | None = None,
        since: datetime | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.source: Source = get_source(name)
        self.dataset = self.source.dataset
        self.storage = storage or get_storage()
        self.batch_size = batch_size or app_settings.EXPORT_BATCH_SIZE
        self.until = until
        self.since = since
        self.progress = progress or (lambda rows: None)
        self.include = self.source.include
        self.work_dir = Path(app_settings.WORK_DIR)

    # -- public ---------------------------------------------------------------------------

    def pending(self) -> tuple[int, int]:
        """Return (rows after the watermark, open gap values) without writing anything."""
        state = ExportCursor.objects.filter(dataset=self.dataset.name).first()
        after = state.high_watermark if state else self._initial_watermark()
        where = Q(**{f"{self.source.cursor_field}__gt": after})
        if self.until:
            where &= Q(**{f"{self.source.time_field}__lt": self.until})
        count = self.source.queryset().filter(where).count()
        return count, ranges.count(gap_ranges(state.gaps)) if state else 0

    def run(self, run: JobRun) -> ExportResult:
        """Export everything available; record counters on `run`."""
        result = ExportResult(self.dataset.name, run_id=run.pk)
        started = timezone.now()
        self.storage.check()
        self._warn_if_sequence_caches()
        with exclusive(f"bronze.export.{self.dataset.name}", app_settings.LOCK_TTL_SECONDS) as lock:
            # Holding the lock proves earlier RUNNING runs of this export are dead.
            JobRun.objects.running().filter(job_name=run.job_name, dataset=run.dataset).exclude(
                pk=run.pk
            ).update(
                status=JobRun.Status.FAILED,
                finished_at=timezone.now(),
                error=f"the process died; its work was completed by run {run.pk}",
            )
            self._check_lake_is_ours()
            state = self._cursor_state()
            result.cursor_start = result.cursor_end = state.high_watermark
            run.cursor_start = str(state.high_watermark)
            run.save(update_fields=["cursor_start"])
            for batch in ExportBatch.objects.filter(
                dataset=self.dataset.name, status=ExportBatch.Status.PLANNED
            ).order_by("number"):
                logger.info(
                    "completing batch %s of %s left by an earlier run",
                    batch.number,
                    self.dataset.name,
                )
                self._complete(batch, result)
            while True:
                lock.renew()
                batch = self._plan_next(run)
                if batch is None:
                    break
                self._complete(batch, result)
                self.progress(batch.rows + batch.rejected)
                if batch.watermark_after == batch.watermark_before and not batch.members:
                    break
            state.refresh_from_db()
            result.cursor_end = state.high_watermark
            result.open_gaps = ranges.count(gap_ranges(state.gaps))
        result.seconds = (timezone.now() - started).total_seconds()
        run.rows_out = result.rows
        run.rows_rejected = result.rejected
        run.rows_in = result.rows + result.rejected
        run.files_written = result.files
        run.bytes_written = result.bytes
        run.cursor_end = str(result.cursor_end)
        run.interval_end = self.until
        return result

    # -- state -----------------------------------------------------------------------------

    def _initial_watermark(self) -> int:
        if self.since is None:
            return 0
        first = first_cursor_at_or_after(self.source, self.since)
        if first is None:
            last = (
                self.source.queryset()
                .order_by(f"-{self.source.cursor_field}")
                .values_list(self.source.cursor_field, flat=True)
                .first()
            )
            return last or 0
        return first - 1

    def _cursor_state(self) -> ExportCursor:
        state = ExportCursor.objects.filter(dataset=self.dataset.name).first()
        if state is None:
            state = ExportCursor.objects.create(
                dataset=self.dataset.name, high_watermark=self._initial_watermark()
            )
        elif self.since is not None:
            logger.info("--since ignored: %s has been exported before", self.dataset.name)
        return state

    # -- planning --------------------------------------------------------------------------

    def _warn_if_sequence_caches(self) -> None:
        """Log a warning when the cursor's PostgreSQL sequence caches values per session.

        With CACHE > 1 a session may draw, long after, a value below one already
        committed, which no gap rule can wait for.
        """
        if connection.vendor != "postgresql" or "__" in self.source.cursor_field:
            return
        meta = self.source.model._meta
        column = meta.get_field(self.source.cursor_field).column
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT seqcache FROM pg_sequence"
                " WHERE seqrelid = pg_get_serial_sequence(%s, %s)::regclass",
                [connection.ops.quote_name(meta.db_table), column],
            )
            row = cursor.fetchone()
        if row and row[0] > 1:
            logger.warning(
                "%s: the sequence of %s.%s has CACHE %s; values drawn out of order by"
                " another session can be missed once their gap closes",
                self.dataset.name, meta.db_table, column, row[0],
            )  # fmt: skip

    def _alive_transactions(self) -> tuple[frozenset[str] | None, bool]:
        """Return the virtual ids of the other transactions alive in this database, and
        whether a prepared transaction is pending; (None, False) off PostgreSQL.

        Every transaction holds the lock on its own virtual id from its first statement,
        with or without a transaction id; a prepared one keeps only its xid's lock.
        """
        if connection.vendor != "postgresql":
            return None, False
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT l.virtualxid, l.locktype = 'transactionid' FROM pg_locks l"
                " LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.mode = 'ExclusiveLock' AND l.granted AND ("
                "  (l.locktype = 'virtualxid' AND l.pid IS DISTINCT FROM pg_backend_pid()"
                "   AND (a.datname IS NULL OR a.datname = current_database()))"
                "  OR (l.locktype = 'transactionid' AND l.pid IS NULL))"
            )
            rows = cursor.fetchall()
        alive = frozenset(vxid for vxid, prepared in rows if not prepared)
        return alive, any(prepared for _, prepared in rows)

    def _read_batch(self, state: ExportCursor) -> tuple[pa.Table, pa.Table, gaps.Observation]:
        """Read (new rows, rows found in gaps) and what was seen of running transactions."""
        # Listed before the snapshot: a transaction missing here has ended before it.
        alive_before, prepared_before = self._alive_transactions()
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # One snapshot for the new rows and the gap rows.
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            fresh = rows_after(self.source, state.high_watermark, self.batch_size)
            found = rows_in(self.source, gap_ranges(state.gaps))
        # Listed after the read: holds whoever drew a value the read found missing.
        alive_after, _ = self._alive_transactions()
        seen = gaps.Observation(timezone.now(), alive_before, alive_after, prepared_before)
        return fresh, found, seen

    def _plan_next(self, run: JobRun) -> ExportBatch | None:
        state = ExportCursor.objects.get(dataset=self.dataset.name)
        fresh, found, seen = self._read_batch(state)
        cursor = self.dataset.cursor
        if self.until is not None and fresh.num_rows:
            late = pc.greater_equal(
                fresh[self.dataset.time_column], pa.scalar(self.until, pa.timestamp("us", tz="UTC"))
            )
            stop = pc.index(late, True).as_py()
            if stop >= 0:
                # Stop the cursor just before the first row at or after --until.
                fresh = fresh.slice(0, stop)
        watermark_after = state.high_watermark
        if fresh.num_rows:
            watermark_after = pc.max(fresh[cursor]).as_py()
        outcome = gaps.advance(
            [gaps.Gap.from_json(gap) for gap in state.gaps],
            found=found[cursor].to_numpy() if found.num_rows else [],
            watermark_before=state.high_watermark,
            watermark_after=watermark_after,
            fresh=fresh[cursor].to_numpy() if fresh.num_rows else [],
            seen=seen,
            settle=timedelta(seconds=app_settings.GAP_SETTLE_SECONDS),
        )
        for gap in outcome.closed:
            logger.info(
                "gap %s-%s of %s closed: never committed", gap.lo, gap.hi, self.dataset.name
            )
        gaps_after = [gap.as_json() for gap in outcome.open]
        if not fresh.num_rows and not found.num_rows and gaps_after == state.gaps:
            return None
        table = pa.concat_tables([fresh, found]) if found.num_rows else fresh
        members = ranges.to_ranges(table[cursor].to_numpy()) if table.num_rows else []
        number = state.next_batch
        files = self._write_files(number, table)
        faults.crash_point("before_plan")
        with transaction.atomic():
            batch = ExportBatch.objects.create(
                dataset=self.dataset.name,
                number=number,
                run=run,
                members=members,
                watermark_before=state.high_watermark,
                watermark_after=watermark_after,
                gaps_after=gaps_after,
                files=[f.as_json() for f in files],
                rows=sum(f.rows for f in files if f.kind == "data"),
                rejected=sum(f.rows for f in files if f.kind == "quarantine"),
            )
            ExportCursor.objects.filter(pk=state.pk).update(next_batch=number + 1)
        self._local_files = {f.key: f.local_path for f in files}
        faults.crash_point("planned")
        return batch

    def _filter_included(self, table: pa.Table) -> pa.Table:
        for column, allowed in self.include.items():
            table = table.filter(
                pc.fill_null(pc.is_in(table[column], value_set=pa.array(allowed)), False)
            )
        return table

    def _write_files(self, number: int, table: pa.Table) -> list[PlannedFile]:
        """Write the batch's Parquet files locally and describe them."""
        table = self._filter_included(table)
        good, rejected = check(self.dataset, table)
        batch_dir = self.work_dir / "bronze" / self.dataset.name / f"batch-{number:08d}"
        if batch_dir.exists():
            shutil.rmtree(batch_dir)
        batch_dir.mkdir(parents=True)
        files = []
        for kind, rows, prefix in (
            ("data", good, self.dataset.prefix),
            ("quarantine", rejected, f"quarantine/{self.dataset.name}"),
        ):
            for index, (partition, part) in enumerate(split_by_partition(self.dataset, rows)):
                key = f"{prefix}/{partition}/part-{number:08d}-{index:04d}.parquet"
                if kind == "data":
                    part = part.select(self.dataset.file_schema.names)
                local = batch_dir / key.replace("/", "__")
                pq.write_table(part, local, compression=PARQUET_COMPRESSION)
                files.append(
                    PlannedFile(
                        key=key,
                        kind=kind,
                        partition=dict(p.split("=", 1) for p in partition.split("/")),
                        rows=part.num_rows,
                        bytes=local.stat().st_size,
                        sha256=file_digest(local),
                        min_cursor=pc.min(part[self.dataset.cursor]).as_py(),
                        max_cursor=pc.max(part[self.dataset.cursor]).as_py(),
                        local_path=str(local),
                    )
                )
        return files

    # -- completing -----------------------------------------------------------------------

    def _regenerate(self, batch: ExportBatch, keys: set[str]) -> dict[str, str]:
        """Rewrite a planned batch's files locally from its recorded cursor values.

        Return the local paths of the files under `keys`. A file written now that
        differs from the plan (the Parquet writer changed since, say) replaces the plan's
        description of it, so its manifest describes what is published.
        """
        table = rows_in(self.source, batch.members)
        expected = ranges.count(batch.members)
        if table.num_rows != expected:
            raise ExportError(
                f"{self.dataset.name} batch {batch.number}: {expected} source rows were planned"
                f" but {table.num_rows} are present now; the source table is not append-only"
            )
        files = {f.key: f for f in self._write_files(batch.number, table)}
        if set(files) != {f["key"] for f in batch.files}:
            raise ExportError(f"{self.dataset.name} batch {batch.number}: files differ from plan")
        changed = False
        for planned in batch.files:
            written = files[planned["key"]]
            if planned["key"] in keys and written.sha256 != planned["sha256"]:
                logger.warning(
                    "%s: rewritten with sha256 %s, planned %s", written.key, written.sha256,
                    planned["sha256"],
                )  # fmt: skip
                planned.update(written.as_json())
                changed = True
        if changed:
            ExportBatch.objects.filter(pk=batch.pk).update(files=batch.files)
        return {key: files[key].local_path for key in keys}

    def _stored_digest(self, key: str) -> str:
        """Return the sha256 of the object already published under `key`."""
        local = self.work_dir / "bronze" / self.dataset.name / f"check-{uuid.uuid4().hex}"
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.storage.download_file(key, local)
            return file_digest(local)
        finally:
            local.unlink(missing_ok=True)

    def _is_published(self, planned: dict) -> bool:
        """Tell whether the planned file is in the lake; raise LakeMismatch if another is."""
        key = planned["key"]
        info = self.storage.stat(key)
        if info is None:
            return False
        if info.size != planned["bytes"] or self._stored_digest(key) != planned["sha256"]:
            raise LakeMismatch(key)
        return True

    def _has_manifest(self, planned: dict) -> bool:
        """Tell whether the planned file's manifest is in the lake; raise LakeMismatch if
        the manifest there describes another file."""
        key = manifest_key(planned["key"])
        if not self.storage.exists(key):
            return False
        try:
            stored = json.loads(self.storage.get_bytes(key))
        except ValueError:
            raise LakeMismatch(key) from None
        if stored.get("key") != planned["key"] or stored.get("sha256") != planned["sha256"]:
            raise LakeMismatch(key)
        return True

    def _check_lake_is_ours(self) -> None:
        """Raise LakeMismatch if the lake holds files of a dataset this database never
        exported (no batch of it, planned or committed, exists)."""
        if ExportBatch.objects.filter(dataset=self.dataset.name).exists():
            return
        for prefix in (self.dataset.prefix, f"quarantine/{self.dataset.name}"):
            found = next(iter(self.storage.list(prefix)), None)
            if found is not None:
                raise LakeMismatch(
                    found.key,
                    f"{found.key} exists but this database has never exported"
                    f" {self.dataset.name}: this lake was written by another database",
                )

    def _complete(self, batch: ExportBatch, result: ExportResult) -> None:
        """Publish what is missing of a planned batch, then commit it.

        Every file already in the lake is checked first, so a batch that meets another
        database's file publishes nothing.
        """
        present = {f["key"] for f in batch.files if self._is_published(f)}
        manifests = {f["key"] for f in batch.files if self._has_manifest(f)}
        missing = {f["key"] for f in batch.files} - present
        local_files = getattr(self, "_local_files", {})
        if missing - set(local_files):
            local_files = self._regenerate(batch, missing)
        for planned in batch.files:
            key = planned["key"]
            if key in missing:
                self.storage.publish_file(local_files[key], key)
            if key not in manifests:
                self.storage.put_bytes(self._manifest(batch, planned), manifest_key(key))
            faults.crash_point("after_publish")
        with transaction.atomic():
            ExportCursor.objects.filter(dataset=self.dataset.name).update(
                high_watermark=batch.watermark_after,
                gaps=batch.gaps_after,
                updated_at=timezone.now(),
            )
            ExportBatch.objects.filter(pk=batch.pk).update(
                status=ExportBatch.Status.COMMITTED, committed_at=timezone.now()
            )
        faults.crash_point("after_commit")
        self._local_files = {}
        shutil.rmtree(
            self.work_dir / "bronze" / self.dataset.name / f"batch-{batch.number:08d}",
            ignore_errors=True,
        )
        result.rows += batch.rows
        result.rejected += batch.rejected
        result.files += len(batch.files)
        result.bytes += sum(f["bytes"] for f in batch.files)

    def _manifest(self, batch: ExportBatch, planned: dict) -> bytes:
        return json.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "dataset": self.dataset.name,
                "file": planned["key"].rpartition("/")[2],
                "key": planned["key"],
                "kind": planned["kind"],
                "partition": planned["partition"],
                "rows": planned["rows"],
                "bytes": planned["bytes"],
                "sha256": planned["sha256"],
                "cursor_column": self.dataset.cursor,
                "min_cursor": planned["min_cursor"],
                "max_cursor": planned["max_cursor"],
                "batch": batch.number,
                "run_id": batch.run_id,
                "columns": [
                    {"name": f.name, "type": str(f.type)}
                    for f in (
                        self.dataset.file_schema
                        if planned["kind"] == "data"
                        else self.dataset.schema
                    )
                ]
                + (
                    [{"name": REASON_COLUMN, "type": "string"}]
                    if planned["kind"] == "quarantine"
                    else []
                ),
                "written_at": timezone.now().isoformat(),
            },
            indent=2,
        ).encode()


def export_dataset(
    name: str,
    *,
    trigger: str = JobRun.Trigger.CLI,
    parameters: dict | None = None,
    parent: JobRun | None = None,
    **options,
) -> ExportResult:
    """Export one bronze dataset, recorded as a JobRun; a concurrent run is SKIPPED."""
    exporter = BronzeExporter(name, **options)
    run = JobRun.objects.start(
        "bronze.export",
        layer=JobRun.Layer.BRONZE,
        dataset=name,
        trigger=trigger,
        parameters=parameters or {},
        parent=parent,
        interval_end=options.get("until"),
    )
    try:
        result = exporter.run(run)
    except ConcurrentRun as exc:
        run.skip(str(exc))
        return ExportResult(name, status=JobRun.Status.SKIPPED, run_id=run.pk, message=str(exc))
    except BaseException as exc:
        run.fail(f"{type(exc).__name__}: {exc}")
        raise
    run.succeed()
    return result
