"""Monitoring: per dataset volumes, freshness, nulls, label balance and reconciliation.

No Spark: one listing of the lake, then each Parquet file's footer (row counts, column
statistics: the newest timestamp, null counts), read from its tail only. Each check run
is an `ops.lake_checks` JobRun with one DatasetStatus row per dataset, so freshness and
volumes can be charted over time.
"""

import datetime as dt
import io
import struct
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from datalake.bronze.schemas import DATASETS as BRONZE
from datalake.conf import app_settings
from datalake.layout import Located, locate
from datalake.models import DatasetStatus, ExportCursor, JobRun
from datalake.runs import run_exclusive
from datalake.storage import Storage, get_storage

#: Column whose maximum is the newest data of a dataset; others use their newest date.
TIME_COLUMNS: dict[str, str] = {
    **{f"bronze.{d.name}": d.time_column for d in BRONZE.values()},
    "silver.stop_executions": "triggered_at",
    "silver.operations": "entry_time",
    "silver.portfolio_snapshots": "timestamp",
}
#: Columns that must never be null (the datasets' contracts).
CRITICAL_COLUMNS: dict[str, tuple[str, ...]] = {
    **{f"bronze.{d.name}": (d.cursor, *d.required) for d in BRONZE.values()},
    "silver.stop_executions": ("execution_id", "operation_id", "status"),
    "silver.operations": ("operation_id",),
    "silver.portfolio_snapshots": ("snapshot_id", "total_value"),
}
#: Datasets whose absence is itself reported (the rest appear once they hold data).
EXPECTED = ("bronze.events", "silver.stop_executions")
LABEL_BALANCE = (0.10, 0.90)
FOOTER_GUESS = 64 * 1024


class UnreadableFooter(Exception):
    """A lake file whose Parquet footer cannot be read."""


def read_footer(storage: Storage, key: str) -> pq.FileMetaData:
    """Return the Parquet metadata of `key`, reading only the end of the file."""
    tail = storage.read_tail(key, FOOTER_GUESS)
    if len(tail) < 12 or tail[-4:] != b"PAR1":
        raise UnreadableFooter(f"{key}: not a Parquet file")
    length = struct.unpack("<I", tail[-8:-4])[0]
    if length + 8 > len(tail):
        tail = storage.read_tail(key, length + 8)
    try:
        return pq.read_metadata(pa.BufferReader(b"PAR1" + tail[-(length + 8) :]))
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableFooter(f"{key}: {exc}") from None


@dataclass
class FileFacts:
    """What one data file's footer says."""

    rows: int
    size: int
    newest: dt.datetime | None
    nulls: dict[str, int]


def file_facts(meta: pq.FileMetaData, size: int, time_column: str | None) -> FileFacts:
    """Return rows, newest `time_column` value and null counts per column of a footer."""
    nulls: dict[str, int] = defaultdict(int)
    newest = None
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            stats = column.statistics
            if stats is None:
                continue
            if stats.has_null_count:
                nulls[column.path_in_schema] += stats.null_count
            if column.path_in_schema == time_column and stats.has_min_max:
                value = stats.max
                if isinstance(value, dt.datetime):
                    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
                    newest = value if newest is None else max(newest, value)
    return FileFacts(meta.num_rows, size, newest, dict(nulls))


@dataclass
class DatasetFacts:
    """A dataset's inventory, summed from its files."""

    name: str
    layer: str
    partitions: set[str] = field(default_factory=set)
    files: int = 0
    rows: int = 0
    bytes: int = 0
    newest: dt.datetime | None = None
    rows_per_date: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    nulls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    versions: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    unreadable: list[str] = field(default_factory=list)

    def add(self, located: Located, facts: FileFacts) -> None:
        part = located.partition
        self.partitions.add(part.prefix)
        self.files += 1
        self.rows += facts.rows
        self.bytes += facts.size
        day = part.date.isoformat() if part.date else "unknown"
        self.rows_per_date[day] += facts.rows
        for column, n in facts.nulls.items():
            self.nulls[column] += n
        newest = facts.newest
        if newest is None and part.date is not None:
            newest = dt.datetime.combine(part.date + dt.timedelta(days=1), dt.time(), dt.UTC)
        if newest is not None:
            self.newest = newest if self.newest is None else max(self.newest, newest)


def inventory(storage: Storage) -> dict[str, DatasetFacts]:
    """List the lake once and sum every data file's footer per dataset."""
    found: dict[str, DatasetFacts] = {}
    for info in storage.list(""):
        located = locate(info.key)
        if located is None or not located.is_data:
            continue
        part = located.partition
        facts = found.setdefault(part.dataset, DatasetFacts(part.dataset, part.layer))
        try:
            meta = read_footer(storage, info.key)
        except UnreadableFooter as exc:
            facts.unreadable.append(str(exc))
            continue
        facts.add(located, file_facts(meta, info.size, TIME_COLUMNS.get(part.dataset)))
        if part.version:
            facts.versions[part.version].append(info.key)
    return found


def max_lag(name: str) -> float | None:
    """Return the freshness contract of `name` in seconds (by name, then by layer)."""
    contracts = app_settings.FRESHNESS_MAX_LAG
    if name in contracts:
        return float(contracts[name])
    layer = name.split(".", 1)[0]
    return float(contracts[layer]) if layer in contracts else None


def label_balance(storage: Storage, keys: Iterable[str]) -> float | None:
    """Return the share of successful executions among a training-set version's samples."""
    labels = []
    for key in keys:
        table = pq.read_table(io.BytesIO(storage.get_bytes(key)))
        label = table["label"].type if "label" in table.column_names else None
        if label is not None and pa.types.is_struct(label):
            if label.get_field_index("execution_success") < 0:
                return None  # a regression set (slippage_prediction): no class balance
            column = pc.struct_field(table["label"], "execution_success")
        elif "execution_success" in table.column_names:
            column = table["execution_success"]
        else:
            return None
        labels.append(column)
    values = [v for chunk in labels for v in chunk.to_pylist() if v is not None]
    return sum(values) / len(values) if values else None


def source_rows_per_date(name: str, since: dt.date) -> dict[str, int]:
    """Return the source rows already exported to bronze `name`, per date, from `since`.

    Rows above the export cursor or in its open gaps are not in bronze yet, so not counted.
    """
    from datalake.bronze.source import get_source

    source = get_source(name)
    state = ExportCursor.objects.filter(dataset=name).first()
    qs = source.queryset().filter(**{f"{source.cursor_field}__lte": state.high_watermark})
    for column, allowed in source.include.items():
        qs = qs.filter(**{f"{source.fields[column]}__in": allowed})
    for gap in state.gaps:
        qs = qs.exclude(**{f"{source.cursor_field}__range": (gap["lo"], gap["hi"])})
    day = TruncDate(source.time_field, tzinfo=dt.UTC)
    qs = qs.annotate(day=day).filter(Q(day__gte=since))
    return {
        row["day"].isoformat(): row["n"]
        for row in qs.values("day").annotate(n=Count("pk")).order_by("day")
    }


def reconcile(name: str, bronze: dict[str, int], since: dt.date) -> list[dict]:
    """Return the days where bronze (data + quarantine) and the source disagree."""
    source = source_rows_per_date(name, since)
    days = sorted({d for d in (*bronze, *source) if d != "unknown" and d >= since.isoformat()})
    return [
        {"date": d, "source": source.get(d, 0), "bronze": bronze.get(d, 0)}
        for d in days
        if source.get(d, 0) != bronze.get(d, 0)
    ]


def assess(
    facts: DatasetFacts,
    *,
    now: dt.datetime,
    max_lag_seconds: float | None,
    critical: tuple[str, ...],
    balance: dict[str, float | None],
    differences: list[dict],
) -> tuple[str, list[str], list[str], float | None]:
    """Return (health, problems, warnings, lag in seconds) of one dataset.

    Problems breach a contract (stale, no data, nulls in a critical column, a
    reconciliation difference, an unreadable file): the dataset is BREACHED. Warnings
    need a look but no action on the lake: a training set's label balance outside
    :data:`LABEL_BALANCE` (a warning of the build too; a published version is immutable).
    """
    problems: list[str] = []
    warnings: list[str] = []
    lag = (now - facts.newest).total_seconds() if facts.newest else None
    if facts.files == 0 and not facts.unreadable:
        if max_lag_seconds is not None:
            problems.append("no data")
        return (DatasetStatus.Health.BREACHED if problems else DatasetStatus.Health.EMPTY,
                problems, warnings, None)  # fmt: skip
    problems.extend(f"unreadable: {reason}" for reason in facts.unreadable[:5])
    if max_lag_seconds is not None and lag is not None and lag > max_lag_seconds:
        problems.append(f"stale: newest data {span(lag)} old, contract {span(max_lag_seconds)}")
    for column in critical:
        if facts.nulls.get(column):
            problems.append(f"{column}: {facts.nulls[column]} nulls")
    low, high = LABEL_BALANCE
    for version, share in sorted(balance.items()):
        if share is not None and not low <= share <= high:
            warnings.append(f"{version}: label balance {share:.1%} outside {low:.0%}-{high:.0%}")
    for diff in differences[:5]:
        problems.append(
            f"{diff['date']}: bronze {diff['bronze']} rows, source {diff['source']} rows"
        )
    if len(differences) > 5:
        problems.append(f"... and {len(differences) - 5} more days differ from the source")
    if problems:
        return DatasetStatus.Health.BREACHED, problems, warnings, lag
    if warnings:
        return DatasetStatus.Health.WARNING, problems, warnings, lag
    health = (
        DatasetStatus.Health.NO_CONTRACT if max_lag_seconds is None else DatasetStatus.Health.OK
    )
    return health, problems, warnings, lag


def span(seconds: float) -> str:
    """Return a duration in seconds as minutes, hours or days."""
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def check_lake(
    *,
    now: dt.datetime | None = None,
    storage: Storage | None = None,
    trigger: str = JobRun.Trigger.CLI,
) -> tuple[JobRun, list[DatasetStatus]]:
    """Take one monitoring sample of every dataset; record and return it."""
    storage = storage or get_storage()
    now = now or timezone.now()
    statuses: list[DatasetStatus] = []

    def body(run: JobRun) -> None:
        found = inventory(storage)
        for name in EXPECTED:
            found.setdefault(name, DatasetFacts(name, name.split(".", 1)[0]))
        since = now.date() - dt.timedelta(days=app_settings.RETENTION_DAYS.get("bronze", 90))
        exported = set(ExportCursor.objects.values_list("dataset", flat=True))
        for name in sorted(found):
            facts = found[name]
            balance = {
                version: label_balance(storage, keys) for version, keys in facts.versions.items()
            }
            differences: list[dict] = []
            short = name.removeprefix("bronze.")
            if name.startswith("bronze.") and short in exported and short in BRONZE:
                bronze = dict(facts.rows_per_date)
                rejected = found.get(f"quarantine.{short}")
                for day, n in (rejected.rows_per_date if rejected else {}).items():
                    bronze[day] = bronze.get(day, 0) + n
                differences = reconcile(short, bronze, since)
            limit = max_lag(name) if not name.startswith("quarantine.") else None
            health, problems, warnings, lag = assess(
                facts,
                now=now,
                max_lag_seconds=limit,
                critical=CRITICAL_COLUMNS.get(name, ()),
                balance=balance,
                differences=differences,
            )
            statuses.append(
                DatasetStatus(
                    run=run,
                    checked_at=now,
                    dataset=name,
                    layer=facts.layer,
                    partitions=len(facts.partitions),
                    files=facts.files,
                    rows=facts.rows,
                    bytes=facts.bytes,
                    newest_data=facts.newest,
                    lag_seconds=lag,
                    max_lag_seconds=limit,
                    health=health,
                    problems=problems,
                    warnings=warnings,
                    details={
                        "rows_per_date": dict(sorted(facts.rows_per_date.items())),
                        "null_pct": {
                            c: round(100 * facts.nulls.get(c, 0) / facts.rows, 4)
                            for c in CRITICAL_COLUMNS.get(name, ())
                            if facts.rows
                        },
                        "label_balance": balance,
                        "reconciliation": differences,
                    },
                )
            )
        DatasetStatus.objects.bulk_create(statuses)
        breached = [s.dataset for s in statuses if s.health == DatasetStatus.Health.BREACHED]
        warned = [s.dataset for s in statuses if s.warnings]
        run.rows_in = sum(s.rows for s in statuses)
        run.summary = {"datasets": len(statuses), "breached": breached, "warnings": warned}

    # Two checks never overlap: the second is recorded SKIPPED, with no statuses.
    run = run_exclusive("ops.lake_checks", body, layer=JobRun.Layer.OPS, trigger=trigger)
    return run, statuses


def latest_statuses() -> list[DatasetStatus]:
    """Return the newest sample of every dataset (the last check that saw it)."""
    latest = JobRun.objects.filter(job_name="ops.lake_checks", status=JobRun.Status.SUCCEEDED)
    run = latest.order_by("-pk").first()
    return list(run.dataset_statuses.order_by("dataset")) if run else []


def status_table(statuses: list[DatasetStatus]) -> list[str]:
    """Return the statuses as the lines of a plain-text table, problems (``!``) and
    warnings under each row."""
    header = ("dataset", "partitions", "files", "rows", "bytes", "newest data (UTC)", "lag",
              "max lag", "health")  # fmt: skip
    rows = [
        (
            s.dataset,
            str(s.partitions),
            str(s.files),
            f"{s.rows:,}",
            f"{s.bytes:,}",
            s.newest_data.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            if s.newest_data
            else "-",
            span(s.lag_seconds) if s.lag_seconds is not None else "-",
            span(s.max_lag_seconds) if s.max_lag_seconds is not None else "-",
            s.health,
        )
        for s in statuses
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    for status, row in zip(statuses, rows, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines.extend(f"    ! {problem}" for problem in status.problems)
        lines.extend(f"    warning: {warning}" for warning in status.warnings)
    return lines
