"""Run one lake job: ``spark-submit spark_jobs/main.py <job> --lake-uri URI --run-id N ...``.

Prints ``APP_ID=<application id>`` on stderr as soon as Spark is up, writes the result
JSON to ``--result-file`` at the end (on failure too), and exits with:

- 0 success;
- 1 any other failure;
- 2 refused: bad arguments, or target partitions exist and --overwrite was not given;
- 3 a critical quality check failed (nothing was published).
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (spark-submit): import the package from the repository root, and not
    # this directory's modules as top-level ones.
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and str(Path(p).resolve()) != _here]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spark_jobs.common.config import UsageError, parse_args
from spark_jobs.common.report import (
    CHECKS_FAILED,
    SUCCEEDED,
    ChecksFailed,
    Refused,
    Report,
)

log = logging.getLogger("spark_jobs")

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_CHECKS = 0, 1, 2, 3
ERROR_CHARS = 4000  # a Py4J error carries the whole Java stack; keep its head

#: Job name -> "module:function" running it as run(spark, config, report).
ENTRY_POINTS = {
    "silver.stop_executions": "spark_jobs.silver.stop_executions:run",
    "silver.operations": "spark_jobs.silver.operations:run",
    "silver.portfolio_snapshots": "spark_jobs.silver.portfolio_snapshots:run",
    "gold.training_sets.stop_outcome": "spark_jobs.gold.training_sets:run",
    "gold.training_sets.slippage_prediction": "spark_jobs.gold.training_sets:run",
    "gold.features.stop_execution_features": "spark_jobs.gold.online_features:run",
    "gold.features.parity": "spark_jobs.gold.online_features:run_parity",
    "diagnostics.fail": "spark_jobs.diagnostics:run_fail",
    "diagnostics.sleep": "spark_jobs.diagnostics:run_sleep",
}


def entry_point(job: str) -> Callable[..., None]:
    """Return the function that runs ``job``."""
    module, name = ENTRY_POINTS[job].split(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    """Run the job named in ``argv`` and return the process exit code."""
    started = time.monotonic()
    argv = sys.argv[1:] if argv is None else list(argv)
    _setup_logging()
    report = Report(job=argv[0] if argv and not argv[0].startswith("-") else "")
    result_file = _result_file(argv)
    try:
        config = parse_args(argv)
    except UsageError as error:
        report.error = f"bad arguments: {error}"
        print(f"error: {report.error}", file=sys.stderr)
        return _finish(report, result_file, started, EXIT_REFUSED)
    report.run_id, report.output = config.run_id, config.output
    report.scope = config.describe_scope()

    from spark_jobs.common.session import get_session  # pyspark only once arguments are fine

    spark, created = None, False
    code = EXIT_FAILED
    try:
        t0 = time.monotonic()
        spark, created = get_session(f"robson {config.job} run-{config.run_id}")
        report.seconds["spark_startup"] = round(time.monotonic() - t0, 3)
        report.app_id = spark.sparkContext.applicationId
        print(f"APP_ID={report.app_id}", file=sys.stderr, flush=True)
        log.info("%s: %s -> %s", config.job, config.describe_scope(), config.output)
        entry_point(config.job)(spark, config, report)
        report.status, code = SUCCEEDED, EXIT_OK
    except Refused as error:
        report.error, code = f"refused: {error}", EXIT_REFUSED
    except ChecksFailed as error:
        report.status, report.error, code = CHECKS_FAILED, str(error), EXIT_CHECKS
    except Exception as error:
        traceback.print_exc()
        report.error, code = f"{type(error).__name__}: {error}"[:ERROR_CHARS], EXIT_FAILED
    finally:
        if spark is not None and created:
            spark.stop()
    if report.error:
        print(f"error: {report.error}", file=sys.stderr)
    return _finish(report, config.result_file, started, code)


def _finish(report: Report, result_file: str | None, started: float, code: int) -> int:
    report.seconds["total"] = round(time.monotonic() - started, 3)
    if result_file:
        try:
            report.write(result_file)
        except OSError as error:
            print(f"error: cannot write result file {result_file}: {error}", file=sys.stderr)
            return code or EXIT_FAILED
    return code


def _result_file(argv: list[str]) -> str | None:
    """Return --result-file from ``argv`` even when the rest does not parse."""
    for i, arg in enumerate(argv):
        if arg == "--result-file" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--result-file="):
            return arg.split("=", 1)[1]
    return None


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )


if __name__ == "__main__":
    sys.exit(main())
