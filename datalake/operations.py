"""Act on runs from admin: re-run a failed one, cancel a running one.

A re-run is queued as the Celery task of the run's job with the run's own parameters
(the same interval for a backfill; an export or a daily silver job resumes from its
last committed cursor, which covers the failed run's range). Cancelling revokes the
run's Celery task, kills its spark-submit process group and ends it CANCELLED.
"""

import logging
import os
import signal
import socket
from dataclasses import dataclass

from datalake.models import JobRun

logger = logging.getLogger(__name__)


class NotCancellable(Exception):
    """The run has already ended."""


class NotRerunnable(Exception):
    """The run did not fail, or its job cannot be queued again."""


@dataclass(frozen=True)
class Rerun:
    """The task a re-run was queued as."""

    task: str
    task_id: str
    kwargs: dict


def rerun_target(run: JobRun) -> tuple[str, dict]:
    """Return (task name, kwargs) that repeat `run`; raise NotRerunnable if none does."""
    p = run.parameters or {}
    if run.job_name == "bronze.export" and run.dataset:
        kwargs = {"dataset": run.dataset, "batch_size": p.get("batch_size")}
        if p.get("until"):
            kwargs["until"] = p["until"]
        return "datalake.export_bronze", kwargs
    if run.job_name.startswith("silver.") and run.parent_id is None:
        return "datalake.run_silver", {"job": run.job_name, "full": bool(p.get("full"))}
    if run.job_name == "backfill":
        keys = ("start_date", "end_date", "input", "output", "overwrite", "chunk_days")
        if all(k in p for k in keys):
            return "datalake.backfill", {k: p[k] for k in keys}
    if run.job_name == "ops.retention":
        return "datalake.apply_retention", {"dry_run": bool(p.get("dry_run"))}
    if run.job_name == "ops.lake_checks":
        return "datalake.lake_checks", {}
    raise NotRerunnable(f"run {run.pk} ({run.job_name}) cannot be queued again from admin")


def rerun(run: JobRun) -> Rerun:
    """Queue the job of a FAILED or CANCELLED `run` again; return the queued task."""
    if run.status not in (JobRun.Status.FAILED, JobRun.Status.CANCELLED):
        raise NotRerunnable(f"run {run.pk} is {run.status}; only failed or cancelled runs")
    from celery import current_app

    import datalake.tasks  # noqa: F401 - registers the tasks by name

    name, kwargs = rerun_target(run)
    result = current_app.tasks[name].apply_async(kwargs=kwargs)
    logger.info("re-run of run %s queued as %s %s", run.pk, name, result.id)
    return Rerun(name, result.id, kwargs)


def cancel(run: JobRun, *, by: str = "") -> list[str]:
    """Revoke `run`'s task, kill its spark-submit process group, end it CANCELLED.

    Return what was done, one line per step, for the admin message.
    """
    run.refresh_from_db()
    if run.status not in (JobRun.Status.RUNNING, JobRun.Status.PENDING):
        raise NotCancellable(f"run {run.pk} is {run.status}: nothing to cancel")
    done = []
    if run.celery_task_id:
        from celery import current_app

        try:
            current_app.control.revoke(run.celery_task_id, terminate=True, signal="SIGTERM")
            done.append(f"revoked task {run.celery_task_id}")
        except Exception as exc:  # a broker without broadcast (filesystem) cannot revoke
            done.append(f"could not revoke task {run.celery_task_id}: {type(exc).__name__}")
    if run.process_group:
        if run.host and run.host != socket.gethostname()[:255]:
            done.append(f"process group {run.process_group} runs on {run.host}: not killed")
        else:
            try:
                os.killpg(run.process_group, signal.SIGKILL)
                done.append(f"killed process group {run.process_group}")
            except ProcessLookupError:
                done.append(f"process group {run.process_group} had already exited")
            except PermissionError:
                done.append(f"not allowed to kill process group {run.process_group}")
    run.finish(JobRun.Status.CANCELLED, error=f"cancelled{f' by {by}' if by else ''}")
    return done
