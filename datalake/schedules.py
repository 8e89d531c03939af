"""The lake's Celery beat schedules: one table in code, written to django-celery-beat.

`setup_schedules()` is safe on every deploy: it creates the missing rows, updates the
rows it wrote itself when the table changes, and leaves alone any row an operator edited
or disabled in admin (told apart by the fingerprint of what it last wrote). A schedule
whose task fails `SCHEDULE_MAX_FAILURES` times in a row pauses itself, with the reason
in its description.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from datalake.conf import app_settings
from datalake.models import ManagedSchedule
from datalake.notify import notify


@dataclass(frozen=True)
class Schedule:
    """One periodic job: its beat name, the Celery task, when (see parse_when), kwargs."""

    name: str
    task: str
    when: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def schedule_table() -> list[Schedule]:
    """Return the lake's schedules, with the operator's overrides of `when` applied."""
    table = [
        Schedule("bronze-ingest", "datalake.bronze_ingest", "5 * * * *",
                 description="Export every bronze dataset incrementally (hourly)"),
        Schedule("silver-transform", "datalake.silver_transform", "30 1 * * *",
                 description="Build silver from the bronze published since its last run"),
        Schedule("gold-features.stop_outcome", "datalake.build_stop_outcome", "0 3 * * 1",
                 description="Weekly stop_outcome training set (next minor version)"),
        Schedule("gold-features.slippage_prediction", "datalake.build_slippage_prediction",
                 "30 3 * * 1", description="Weekly slippage_prediction training set"),
        Schedule("features-refresh", "datalake.refresh_features",
                 app_settings.FEATURES_REFRESH_EVERY, description="Online features refresh"),
        Schedule("retention", "datalake.apply_retention", "15 0 * * *",
                 description="Delete partitions past their layer's retention"),
        Schedule("lake-checks", "datalake.lake_checks", "45 * * * *",
                 description="Freshness and quality checks"),
    ]  # fmt: skip
    overrides = app_settings.SCHEDULE_OVERRIDES
    unknown = set(overrides) - {s.name for s in table}
    if unknown:
        raise ScheduleError(f"unknown schedule(s) in overrides: {', '.join(sorted(unknown))}")
    return [
        Schedule(s.name, s.task, overrides.get(s.name, s.when), s.kwargs, s.description)
        for s in table
    ]


class ScheduleError(ValueError):
    """A schedule spec that is neither an interval nor a cron expression."""


INTERVAL = re.compile(r"^(?P<every>[1-9]\d*)(?P<unit>[smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z]+$")


def parse_when(when: str) -> dict[str, Any]:
    """Return the django-celery-beat fields of `when`: `"15m"`, `"2s"`, `"1h"`, `"7d"` for
    an interval, or a five-field cron expression (minute hour day month weekday, UTC)."""
    text = when.strip()
    if match := INTERVAL.match(text):
        return {"interval": {"every": int(match["every"]), "period": UNITS[match["unit"]]}}
    parts = text.split()
    if len(parts) != 5 or not all(CRON_FIELD.match(p) for p in parts):
        raise ScheduleError(
            f"bad schedule {when!r}: use an interval like 15m, 2h, 30s, 1d "
            "or a cron expression 'minute hour day month weekday'"
        )
    minute, hour, day_of_month, month_of_year, day_of_week = parts
    return {
        "crontab": {
            "minute": minute,
            "hour": hour,
            "day_of_month": day_of_month,
            "month_of_year": month_of_year,
            "day_of_week": day_of_week,
        }
    }


def fingerprint(
    task: str, when: dict[str, Any], kwargs: dict[str, Any], enabled: bool, description: str
) -> str:
    """Return a digest of what defines a periodic task, to notice edits made in admin."""
    data = {"task": task, "when": when, "kwargs": kwargs, "enabled": enabled, "text": description}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _row_when(row: PeriodicTask) -> dict[str, Any]:
    if row.interval_id:
        return {"interval": {"every": row.interval.every, "period": row.interval.period}}
    if row.crontab_id:
        c = row.crontab
        return {
            "crontab": {
                "minute": c.minute,
                "hour": c.hour,
                "day_of_month": c.day_of_month,
                "month_of_year": c.month_of_year,
                "day_of_week": c.day_of_week,
            }
        }
    return {"other": True}  # solar or clocked: only an operator sets those


def _row_fingerprint(row: PeriodicTask) -> str:
    kwargs = json.loads(row.kwargs or "{}")
    return fingerprint(row.task, _row_when(row), kwargs, row.enabled, row.description)


def _schedule_fields(when: dict[str, Any]) -> dict[str, Any]:
    if "interval" in when:
        interval, _ = IntervalSchedule.objects.get_or_create(**when["interval"])
        return {"interval": interval, "crontab": None, "solar": None, "clocked": None}
    crontab = CrontabSchedule.objects.filter(**when["crontab"], timezone="UTC").first()
    if crontab is None:
        crontab = CrontabSchedule.objects.create(**when["crontab"], timezone="UTC")
    return {"interval": None, "crontab": crontab, "solar": None, "clocked": None}


@dataclass(frozen=True)
class SetupOutcome:
    """What setup_schedules did to one schedule: created, updated, unchanged, kept, skipped."""

    name: str
    action: str
    reason: str = ""


def setup_schedules(registered: set[str]) -> list[SetupOutcome]:
    """Write the schedule table to django-celery-beat; return what happened to each entry.

    `registered` holds the Celery task names that exist: an entry whose task is not
    among them is skipped (reported), not written.
    """
    outcomes = []
    for entry in schedule_table():
        if entry.task not in registered:
            reason = f"task {entry.task} not registered"
            outcomes.append(SetupOutcome(entry.name, "skipped", reason))
            continue
        outcomes.append(_setup_one(entry))
    return outcomes


@transaction.atomic
def _setup_one(entry: Schedule) -> SetupOutcome:
    when = parse_when(entry.when)
    wanted = fingerprint(entry.task, when, entry.kwargs, True, entry.description)
    row = PeriodicTask.objects.select_for_update().filter(name=entry.name).first()
    if row is None:
        row = PeriodicTask.objects.create(
            name=entry.name,
            task=entry.task,
            kwargs=json.dumps(entry.kwargs),
            description=entry.description,
            enabled=True,
            **_schedule_fields(when),
        )
        ManagedSchedule.objects.create(periodic_task=row, fingerprint=wanted)
        return SetupOutcome(entry.name, "created")
    managed = ManagedSchedule.objects.filter(periodic_task=row).first()
    if managed is None:
        return SetupOutcome(entry.name, "kept", "created by hand, not by setup_schedules")
    if _row_fingerprint(row) != managed.fingerprint:
        reason = "paused after failures" if managed.paused_at else "edited or disabled in admin"
        return SetupOutcome(entry.name, "kept", reason)
    if managed.fingerprint == wanted:
        return SetupOutcome(entry.name, "unchanged")
    for name, value in _schedule_fields(when).items():
        setattr(row, name, value)
    row.task, row.kwargs, row.description = entry.task, json.dumps(entry.kwargs), entry.description
    row.save()
    managed.fingerprint = wanted
    managed.save(update_fields=["fingerprint", "updated_at"])
    return SetupOutcome(entry.name, "updated")


def record_outcome(periodic_task_name: str, *, failed: bool, error: str = "") -> bool:
    """Count a scheduled run's outcome; pause the schedule after too many failures in a row.

    Return True when this outcome paused it. A success resets the count.
    """
    managed = ManagedSchedule.objects.filter(periodic_task__name=periodic_task_name)
    if not failed:
        managed.filter(consecutive_failures__gt=0).update(consecutive_failures=0)
        return False
    limit = app_settings.SCHEDULE_MAX_FAILURES
    with transaction.atomic():
        managed.update(consecutive_failures=F("consecutive_failures") + 1)
        state = managed.select_for_update().select_related("periodic_task").first()
        if state is None or state.consecutive_failures < limit or limit <= 0:
            return False
        row = state.periodic_task
        reason = (
            f"Paused automatically at {timezone.now():%Y-%m-%d %H:%M:%S} UTC after "
            f"{state.consecutive_failures} consecutive failures; last error: {error[:500]}"
        )
        row.enabled = False
        row.description = f"{reason}\n\n{row.description}".strip()
        row.save()
        # Re-enabling in admin starts a fresh count; setup_schedules leaves it alone
        # until then (its fingerprint no longer matches).
        state.consecutive_failures = 0
        state.paused_at = timezone.now()
        state.pause_reason = reason
        state.save(update_fields=["consecutive_failures", "paused_at", "pause_reason"])
    notify("pause", f"schedule {periodic_task_name} paused", {"reason": reason})
    return True
