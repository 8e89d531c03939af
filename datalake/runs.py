"""Record a unit of work as a JobRun."""

from collections.abc import Callable, Iterator
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


def run_exclusive(
    job_name: str,
    body: Callable[[JobRun], None],
    *,
    layer: str,
    lock: str | None = None,
    **fields: Any,
) -> JobRun:
    """Run `body(run)` as a tracked JobRun holding the job's lock; return the run.

    Two runs of one job never overlap: when another run holds the lock (`lock`, by
    default `job.<job name>`) this run is recorded as SKIPPED and the body does not run.
    The body may close the run itself; otherwise it SUCCEEDS, or FAILS if the body raises.
    """
    from datalake.locks import ConcurrentRun, exclusive

    run = JobRun.objects.start(job_name, layer=layer, **fields)
    try:
        with exclusive(lock or f"job.{job_name}"):
            body(run)
    except ConcurrentRun as exc:
        if run.status == JobRun.Status.RUNNING:
            run.skip(str(exc))
        return run
    except BaseException as exc:
        if run.status == JobRun.Status.RUNNING:
            run.fail(f"{type(exc).__name__}: {exc}")
        raise
    if run.status == JobRun.Status.RUNNING:
        run.succeed()
    return run
