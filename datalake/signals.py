"""Alerts wired to what happens: finished runs and the outcome of scheduled tasks."""

import logging
from typing import Any

from celery import states
from celery.signals import task_postrun
from django.dispatch import receiver

from datalake.models import JobRun, run_finished

logger = logging.getLogger(__name__)

#: Runs that answer someone's query: their failure is that person's error message.
QUERY_JOBS = frozenset({"lake_sql"})


@receiver(run_finished, dispatch_uid="datalake.alert_on_run")
def alert_on_run(sender: type, run: JobRun, **kwargs: Any) -> None:
    """Alert on a finished run; an alert that cannot be sent never fails the run."""
    try:
        _alert_on_run(run)
    except Exception:
        logger.exception("could not alert on run %s", run.pk)


def _alert_on_run(run: JobRun) -> None:
    """Notify a failed top-level run, and a dataset run that broke its contract.

    Runs of Celery tasks (trigger schedule) are told by the task's own failure instead:
    once per task, after its retries, even when it failed before recording a run. An
    analyst's query (``lake_sql``) that fails is told to the analyst, not to operations.
    """
    from datalake.notify import notify

    where = f"{run.job_name} run {run.pk}" + (f" ({run.dataset})" if run.dataset else "")
    told_elsewhere = run.trigger == JobRun.Trigger.SCHEDULE or run.job_name in QUERY_JOBS
    if run.status == JobRun.Status.FAILED and run.parent_id is None and not told_elsewhere:
        notify("failure", f"{where} failed", {"error": run.error[:2000], "trigger": run.trigger})
    if not run.dataset:  # a parent run sums its children, which alert themselves
        return
    breaches = []
    if run.rows_rejected:
        breaches.append(f"{run.rows_rejected} rows quarantined")
    failed = run.checks.filter(passed=False, critical=True).values_list("partition", "name")
    breaches += [f"check {name} failed on {partition or 'all'}" for partition, name in failed]
    if breaches:
        notify("contract_breach", f"{where} broke its contract", {"breaches": "; ".join(breaches)})


def periodic_task_name(request: Any) -> str | None:
    """Return the beat schedule that sent this task (django-celery-beat's header), if any."""
    name = getattr(request, "periodic_task_name", None)
    headers = getattr(request, "headers", None) or {}
    return name or headers.get("periodic_task_name")


@task_postrun.connect(dispatch_uid="datalake.on_task_outcome")
def on_task_outcome(task: Any = None, state: str | None = None, retval: Any = None,
                    **kwargs: Any) -> None:  # fmt: skip
    """Notify a failed task (after its retries); count a scheduled task's outcome towards
    pausing its schedule."""
    from datalake.notify import notify
    from datalake.schedules import record_outcome

    if task is None or state not in (states.SUCCESS, states.FAILURE):
        return
    name = periodic_task_name(task.request)
    failed = state == states.FAILURE
    error = f"{type(retval).__name__}: {retval}" if failed else ""
    if failed:
        origin = f" (schedule {name})" if name else ""
        notify("failure", f"task {task.name} failed{origin}", {"error": error[:2000]})
    if not name:
        return
    try:
        record_outcome(name, failed=failed, error=error)
    except Exception:  # counting must never break the worker
        logger.exception("could not record the outcome of schedule %s", name)
