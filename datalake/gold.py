"""Gold: build a version of a training set with Spark, tracked as a JobRun."""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from datalake.lineage import published_since_last, record_consumed
from datalake.models import JobRun
from datalake.runs import run_exclusive
from datalake.spark.runner import SparkJobFailed, run_job

TRAINING_SETS = ("stop_outcome", "slippage_prediction")
#: Each input of a training set and the job (name, dataset) whose runs write it: the
#: latest successful one is recorded in the version's features.json.
INPUT_WRITERS = {
    "silver.stop_executions": ("silver.stop_executions", ""),
    "bronze.orders": ("bronze.export", "orders"),
    "bronze.klines": ("bronze.export", "klines"),
}
VERSION = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
DURATION = re.compile(r"^\d+\s*(s|m|min|h|d)?$")


class InvalidBuild(ValueError):
    """A training-set build asked for with arguments that cannot work."""


@dataclass(frozen=True)
class BuildOptions:
    """What to build: the parameters of one training-set version (None: the job's default)."""

    version: str | None = None
    as_of: datetime | None = None
    test_from: date | None = None
    test_fraction: float | None = None
    embargo: str | None = None

    def job_args(self) -> list[str]:
        """Return the spark_jobs/main.py arguments, or raise InvalidBuild."""
        if self.version is not None and not VERSION.match(self.version):
            raise InvalidBuild(f"--version must look like v1.0.0, got {self.version!r}")
        if self.test_from is not None and self.test_fraction is not None:
            raise InvalidBuild("give --test-from or --test-fraction, not both")
        if self.test_fraction is not None and not 0 < self.test_fraction < 1:
            raise InvalidBuild(
                f"--test-fraction must lie between 0 and 1, got {self.test_fraction}"
            )
        if self.embargo is not None and not DURATION.match(self.embargo.strip().lower()):
            raise InvalidBuild(
                f"--embargo must look like 3600, 30m, 1h or 2d, got {self.embargo!r}"
            )
        args: list[str] = []
        if self.version:
            args += ["--version", self.version]
        if self.as_of:
            as_of = self.as_of if self.as_of.tzinfo else self.as_of.replace(tzinfo=UTC)
            args += ["--as-of", as_of.astimezone(UTC).isoformat()]
        if self.test_from:
            args += ["--test-from", self.test_from.isoformat()]
        if self.test_fraction is not None:
            args += ["--test-fraction", repr(self.test_fraction)]
        if self.embargo:
            args += ["--embargo", self.embargo.strip()]
        return args


def input_runs() -> str:
    """Return ``dataset=run_id,...``: the latest successful run that wrote each input."""
    pairs = []
    for dataset, (job_name, written) in INPUT_WRITERS.items():
        runs = JobRun.objects.filter(job_name=job_name, status=JobRun.Status.SUCCEEDED)
        if written:
            runs = runs.filter(dataset=written)
        latest = runs.order_by("-pk").values_list("pk", flat=True).first()
        if latest is not None:
            pairs.append(f"{dataset}={latest}")
    return ",".join(pairs)


def new_inputs(job: str) -> list[JobRun]:
    """Return the runs that wrote an input of gold job ``job`` since its last successful
    build consumed theirs (silver runs and the bronze export runs of its inputs), oldest
    first."""
    found: list[JobRun] = []
    for producer in sorted({job_name for job_name, _ in INPUT_WRITERS.values()}):
        wanted = {written for job_name, written in INPUT_WRITERS.values() if job_name == producer}
        found += [
            run
            for run in published_since_last(job, [producer])
            if "" in wanted or run.dataset in wanted
        ]
    return sorted(found, key=lambda run: run.pk)


def build_training_set(
    name: str,
    options: BuildOptions | None = None,
    *,
    trigger: str = JobRun.Trigger.CLI,
    timeout: float | None = None,
) -> JobRun:
    """Build one version of training set ``name`` (stop_outcome, slippage_prediction).

    Two builds of one set never overlap: while one runs, another is recorded SKIPPED.
    The run records the runs whose outputs it read since the last build (lineage), the
    version, rows per split and whether the build was a verified no-op of an already
    published version; its quality checks come from the job.
    """
    if name not in TRAINING_SETS:
        raise InvalidBuild(f"unknown training set {name!r}; known: {', '.join(TRAINING_SETS)}")
    options = options or BuildOptions()
    args = options.job_args()
    job = f"gold.training_sets.{name}"

    def body(run: JobRun) -> None:
        record_consumed(run, new_inputs(job))
        runs = input_runs()
        outcome = run_job(job, [*args, *(["--input-runs", runs] if runs else [])],
                          run=run, timeout=timeout)  # fmt: skip
        details = outcome.result.get("details", {})
        run.parameters = {
            **run.parameters,
            **{key: details[key] for key in ("version", "parameters", "rows", "purged", "noop")
               if key in details},
        }  # fmt: skip
        run.save(update_fields=["parameters"])
        if not outcome.ok:
            raise SparkJobFailed(run.error.splitlines()[0])

    return run_exclusive(
        job,
        body,
        layer=JobRun.Layer.GOLD,
        lock=f"spark.{job}",
        dataset=f"training_sets/{name}",
        trigger=trigger,
        parameters={"arguments": args},
    )


def describe(run: JobRun) -> str:
    """Return the one line a command prints for a finished training-set build."""
    name = run.job_name
    if run.status == JobRun.Status.SKIPPED:
        return f"{name}: skipped — {run.error}"
    version = run.parameters.get("version", "?")
    if run.parameters.get("noop"):
        return f"{name} {version}: already published from the same inputs, verified (run {run.pk})"
    rows = run.parameters.get("rows", {})
    return (
        f"{name} {version}: published — train {rows.get('train', 0)}, test {rows.get('test', 0)},"
        f" purged {run.parameters.get('purged', 0)} (run {run.pk}, log {run.log_file})"
    )
