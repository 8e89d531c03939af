"""Celery tasks: thin shells over the datalake services."""

from celery import shared_task

from datalake.models import JobRun
from datalake.runs import tracked_run


@shared_task(name="datalake.ping")
def ping(message: str = "pong") -> int:
    """Record a trivial ops run and return its id: proves worker, broker and database."""
    with tracked_run(
        "ops.ping",
        layer=JobRun.Layer.OPS,
        trigger=JobRun.Trigger.SCHEDULE,
        parameters={"message": message},
    ) as run:
        run.rows_out = 1
    return run.pk
