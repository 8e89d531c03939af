"""Check bronze against its manifests and against the source table."""

import datetime as dt
import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from datalake.bronze.exporter import manifest_key
from datalake.bronze.source import get_source
from datalake.models import ExportCursor
from datalake.storage.base import Storage


def deleted_dates(name: str) -> set[dt.date]:
    """Return the dates whose bronze `name` partitions retention has deleted."""
    from datalake.layout import locate
    from datalake.models import JobRun

    dates = set()
    runs = JobRun.objects.filter(job_name="ops.retention", status=JobRun.Status.SUCCEEDED)
    for summary in runs.values_list("summary", flat=True):
        if summary.get("dry_run", True):
            continue
        for deleted in summary.get("deleted", []):
            if deleted.get("dataset") == f"bronze.{name}":
                located = locate(f"{deleted['prefix']}/file.parquet")
                if located is not None and located.partition.date is not None:
                    dates.add(located.partition.date)
    return dates


@dataclass
class VerifyReport:
    """What `verify` found for one dataset; `problems` is empty when all is well."""

    dataset: str
    files: int = 0
    rows: int = 0
    quarantined: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_dataset(name: str, storage: Storage) -> VerifyReport:
    """Recompute checksums and counts of every file, and compare with the source rows."""
    source = get_source(name)
    dataset = source.dataset
    report = VerifyReport(name)
    seen: Counter[int] = Counter()
    manifests: dict[str, dict] = {}
    data_keys: set[str] = set()
    for prefix in (dataset.prefix + "/", f"quarantine/{name}/"):
        for info in storage.list(prefix):
            if "/_metadata/" in info.key and info.key.endswith(".json"):
                manifests[info.key] = json.loads(storage.get_bytes(info.key))
            elif info.key.endswith(".parquet") and "/." not in info.key:
                data_keys.add(info.key)
    for key in sorted(data_keys):
        manifest = manifests.get(manifest_key(key))
        if manifest is None:
            report.problems.append(f"{key}: no manifest (orphan file)")
            continue
        body = storage.get_bytes(key)
        if hashlib.sha256(body).hexdigest() != manifest["sha256"]:
            report.problems.append(f"{key}: sha256 differs from its manifest")
        try:
            rows = pq.ParquetFile(io.BytesIO(body)).metadata.num_rows
            values = pq.read_table(io.BytesIO(body), columns=[dataset.cursor])[dataset.cursor]
        except pa.ArrowException as exc:
            report.problems.append(f"{key}: not readable as Parquet ({exc})")
            continue
        if rows != manifest["rows"]:
            report.problems.append(f"{key}: {rows} rows, manifest says {manifest['rows']}")
        seen.update(values.to_pylist())
        report.files += 1
        if manifest["kind"] == "quarantine":
            report.quarantined += rows
        else:
            report.rows += rows
    for key, manifest in manifests.items():
        if manifest["key"] not in data_keys:
            report.problems.append(f"{key}: describes {manifest['key']}, which is missing")
    duplicates = [value for value, n in seen.items() if n > 1]
    if duplicates:
        report.problems.append(
            f"{len(duplicates)} source rows appear more than once, e.g. {dataset.cursor}="
            f"{sorted(duplicates)[:5]}"
        )
    state = ExportCursor.objects.filter(dataset=name).first()
    watermark = state.high_watermark if state else 0
    qs = source.queryset().filter(**{f"{source.cursor_field}__lte": watermark})
    for column, allowed in source.include.items():
        qs = qs.filter(**{f"{source.fields[column]}__in": allowed})
    expected = set(qs.values_list(source.cursor_field, flat=True).iterator(chunk_size=50_000))
    gaps = {v for g in (state.gaps if state else []) for v in range(g["lo"], g["hi"] + 1)}
    missing = expected - set(seen) - gaps
    dates = deleted_dates(name) if missing else set()
    if dates:
        # Rows of the partitions retention deleted are gone on purpose, not missing.
        end = dt.datetime.combine(max(dates) + dt.timedelta(days=1), dt.time(), dt.UTC)
        older = qs.filter(**{f"{source.time_field}__lt": end})
        missing -= {
            cursor
            for cursor, at in older.values_list(source.cursor_field, source.time_field)
            if at is not None and at.astimezone(dt.UTC).date() in dates
        }
    if missing:
        report.problems.append(
            f"{len(missing)} source rows up to the cursor ({watermark}) are not in bronze,"
            f" e.g. {dataset.cursor}={sorted(missing)[:5]}"
        )
    extra = set(seen) - expected
    if extra:
        report.problems.append(
            f"{len(extra)} bronze rows have no source row, e.g. {sorted(extra)[:5]}"
        )
    return report
