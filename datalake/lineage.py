"""Which runs' outputs a run consumed: the chain from bronze to silver to gold.

Silver learns the bronze published since its last run from the export batches
(`datalake.silver.new_bronze`). A gold build learns the silver published since its last
build here: the successful runs of its input jobs newer than those its last successful
build consumed.
"""

from collections.abc import Iterable

from django.db.models import Max, Min

from datalake.models import JobRun


def published_since_last(
    consumer: str, producers: Iterable[str], *, dataset: str = ""
) -> list[JobRun]:
    """Return the successful runs of `producers` that the last successful `consumer` run
    (of `dataset`, when given) did not consume, oldest first.

    With no earlier consumer run, every successful producer run is new. Runs are read
    only up to the oldest producer run still RUNNING: one that succeeds after a newer
    one must not fall behind the consumer's cursor.
    """
    builds = JobRun.objects.filter(job_name=consumer, status=JobRun.Status.SUCCEEDED)
    if dataset:
        builds = builds.filter(dataset=dataset)
    last = builds.order_by("-pk").first()
    producers = list(producers)
    seen = 0
    if last is not None:
        consumed = last.consumed.filter(job_name__in=producers).aggregate(Max("pk"))["pk__max"]
        seen = consumed or 0
    runs = JobRun.objects.filter(job_name__in=producers, pk__gt=seen)
    in_flight = runs.running().aggregate(first=Min("pk"))["first"]
    done = runs.filter(status=JobRun.Status.SUCCEEDED)
    if in_flight is not None:
        done = done.filter(pk__lt=in_flight)
    return list(done.order_by("pk"))


def record_consumed(run: JobRun, inputs: Iterable[JobRun | int]) -> None:
    """Record that `run` read the outputs of `inputs`."""
    run.consumed.add(*inputs)
