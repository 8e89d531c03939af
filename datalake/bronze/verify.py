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
from datalake.models import ExportCursor, JobRun, QualityCheck
from datalake.runs import tracked_run
from datalake.storage.base import Storage

#: What verify checks, by the name its QualityCheck rows carry.
CHECKS = (
    "file_has_manifest",
    "sha256_matches_manifest",
    "file_is_parquet",
    "rows_match_manifest",
    "manifest_has_file",
    "no_duplicate_rows",
    "no_missing_source_rows",
    "no_rows_without_source",
)


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
    watermark: int = 0
    problems: list[str] = field(default_factory=list)
    failed: dict[str, list[str]] = field(default_factory=dict)  # check name -> its problems

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, check: str, text: str) -> None:
        """Record a problem found by `check`."""
        self.problems.append(text)
        self.failed.setdefault(check, []).append(text)

    def checks(self) -> list[tuple[str, bool, str]]:
        """Return (check, passed, observed) for every check in CHECKS."""
        results = []
        for check in CHECKS:
            found = self.failed.get(check, [])
            observed = f"{len(found)} problem(s), e.g. {found[0]}" if found else "ok"
            results.append((check, not found, observed))
        return results


def verify_and_record(
    name: str, storage: Storage, *, trigger: str = JobRun.Trigger.CLI
) -> tuple[JobRun, VerifyReport]:
    """Verify `name` as a JobRun `bronze.verify.<name>` with one QualityCheck per check.

    The run FAILS when a check fails (or verify cannot run); return (run, report).
    """
    with tracked_run(
        f"bronze.verify.{name}", layer=JobRun.Layer.BRONZE, dataset=name, trigger=trigger
    ) as run:
        report = verify_dataset(name, storage)
        QualityCheck.objects.bulk_create(
            QualityCheck(
                run=run,
                dataset=f"bronze.{name}",
                name=check,
                passed=passed,
                observed=observed[:500],
            )
            for check, passed, observed in report.checks()
        )
        run.rows_in = report.rows + report.quarantined
        run.rows_rejected = report.quarantined
        run.parameters = {"files_checked": report.files, "up_to_cursor": report.watermark}
        if report.ok:
            run.succeed()
        else:
            names = ", ".join(check for check, passed, _ in report.checks() if not passed)
            run.fail(f"{len(report.problems)} problem(s) ({names}): {report.problems[0]}")
    return run, report


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
            report.problem("file_has_manifest", f"{key}: no manifest (orphan file)")
            continue
        body = storage.get_bytes(key)
        if hashlib.sha256(body).hexdigest() != manifest["sha256"]:
            report.problem("sha256_matches_manifest", f"{key}: sha256 differs from its manifest")
        try:
            rows = pq.ParquetFile(io.BytesIO(body)).metadata.num_rows
            values = pq.read_table(io.BytesIO(body), columns=[dataset.cursor])[dataset.cursor]
        except pa.ArrowException as exc:
            report.problem("file_is_parquet", f"{key}: not readable as Parquet ({exc})")
            continue
        if rows != manifest["rows"]:
            report.problem(
                "rows_match_manifest", f"{key}: {rows} rows, manifest says {manifest['rows']}"
            )
        seen.update(values.to_pylist())
        report.files += 1
        if manifest["kind"] == "quarantine":
            report.quarantined += rows
        else:
            report.rows += rows
    for key, manifest in manifests.items():
        if manifest["key"] not in data_keys:
            report.problem(
                "manifest_has_file", f"{key}: describes {manifest['key']}, which is missing"
            )
    duplicates = [value for value, n in seen.items() if n > 1]
    if duplicates:
        report.problem(
            "no_duplicate_rows",
            f"{len(duplicates)} source rows appear more than once, e.g. {dataset.cursor}="
            f"{sorted(duplicates)[:5]}",
        )
    state = ExportCursor.objects.filter(dataset=name).first()
    watermark = report.watermark = state.high_watermark if state else 0
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
        report.problem(
            "no_missing_source_rows",
            f"{len(missing)} source rows up to the cursor ({watermark}) are not in bronze,"
            f" e.g. {dataset.cursor}={sorted(missing)[:5]}",
        )
    extra = set(seen) - expected
    if extra:
        report.problem(
            "no_rows_without_source",
            f"{len(extra)} bronze rows have no source row, e.g. {sorted(extra)[:5]}",
        )
    return report
