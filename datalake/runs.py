"""Record a unit of work as a JobRun."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from datalake.models import JobRun


@contextmanager
def tracked_run(job_name: str, *, layer: str, **fields: Any) -> Iterator[JobRun]:
    """Yield a RUNNING JobRun; mark it SUCCEEDED on exit, FAILED if the body raises.

    The body may set counters on the run (rows_out, bytes_written...) or finish it
    itself (skip, fail); a run the body already closed is left as it is.
    """
    run = JobRun.objects.start(job_name, layer=layer, **fields)
    try:
        yield run
    except BaseException as exc:
        run.fail(f"{type(exc).__name__}: {exc}")
        raise
    if run.status == JobRun.Status.RUNNING:
        run.succeed()
