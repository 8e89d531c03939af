"""What the admin's datasets page shows: the latest status of every dataset, and charts."""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.utils import timezone

from datalake.models import DatasetStatus, JobRun, QualityCheck
from datalake.monitoring import latest_statuses

CHART_DAYS = 30
CHART_SAMPLES = 60
CHART_RUNS = 200


@dataclass
class DatasetRow:
    """One line of the datasets page."""

    status: DatasetStatus
    last_run: JobRun | None
    checks_passed: int
    checks_failed: list[str]


def _last_run(status: DatasetStatus) -> JobRun | None:
    layer, _, name = status.dataset.partition(".")
    if layer == "quarantine":
        layer = "bronze"
    runs = JobRun.objects.filter(layer=layer, dataset=name.rpartition(".")[2] or name)
    return runs.exclude(job_name="ops.lake_checks").order_by("-created_at").first()


def dataset_rows() -> list[DatasetRow]:
    """Return the latest status of every dataset with its last run and quality checks."""
    rows = []
    for status in latest_statuses():
        run = _last_run(status)
        checks = QualityCheck.objects.filter(run=run, dataset=status.dataset) if run else []
        failed = sorted({c.name for c in checks if not c.passed})
        rows.append(DatasetRow(status, run, sum(1 for c in checks if c.passed), failed))
    return rows


def _stamp(value: dt.datetime) -> str:
    return timezone.localtime(value, dt.UTC).strftime("%m-%d %H:%M:%S")


def rows_per_day(statuses: list[DatasetStatus]) -> dict:
    """Return a chart of rows per day per dataset over the last CHART_DAYS dates."""
    series = {
        s.dataset: s.details.get("rows_per_date", {})
        for s in statuses
        if not s.dataset.startswith("quarantine.") and s.rows
    }
    dates = sorted({d for per in series.values() for d in per if d != "unknown"})[-CHART_DAYS:]
    return {
        "labels": dates,
        "datasets": [
            {"label": name, "data": [per.get(d, 0) for d in dates]}
            for name, per in sorted(series.items())
        ],
    }


def freshness_over_time() -> dict:
    """Return a chart of each contracted dataset's lag (hours) over the last samples."""
    runs = list(
        JobRun.objects.filter(job_name="ops.lake_checks", status=JobRun.Status.SUCCEEDED)
        .order_by("-pk")
        .values_list("pk", flat=True)[:CHART_SAMPLES]
    )[::-1]
    samples = DatasetStatus.objects.filter(
        run_id__in=runs, max_lag_seconds__isnull=False, lag_seconds__isnull=False
    ).order_by("checked_at")
    times: dict[int, str] = {}
    lags: dict[str, dict[int, float]] = defaultdict(dict)
    for s in samples:
        times.setdefault(s.run_id, _stamp(s.checked_at))
        lags[s.dataset][s.run_id] = round(s.lag_seconds / 3600, 3)
    order = [pk for pk in runs if pk in times]
    return {
        "labels": [times[pk] for pk in order],
        "datasets": [
            {"label": name, "data": [per.get(pk) for pk in order]}
            for name, per in sorted(lags.items())
        ],
    }


def run_durations() -> dict:
    """Return a chart of the duration (seconds) of the latest finished runs, per job."""
    runs = list(
        JobRun.objects.filter(started_at__isnull=False, finished_at__isnull=False)
        .order_by("-started_at")
        .only("pk", "job_name", "started_at", "finished_at")[:CHART_RUNS]
    )[::-1]
    labels = [_stamp(r.started_at) for r in runs]
    jobs = sorted({r.job_name for r in runs})
    return {
        "labels": labels,
        "datasets": [
            {
                "label": job,
                "data": [
                    round((r.finished_at - r.started_at).total_seconds(), 3)
                    if r.job_name == job
                    else None
                    for r in runs
                ],
            }
            for job in jobs
        ],
    }


def charts(statuses: list[DatasetStatus]) -> dict:
    """Return every chart of the datasets page, keyed by its canvas id."""
    return {
        "rows-per-day": {"type": "bar", "title": "Rows per day", **rows_per_day(statuses)},
        "freshness": {"type": "line", "title": "Freshness lag (hours)", **freshness_over_time()},
        "durations": {"type": "line", "title": "Run duration (seconds)", **run_durations()},
    }
