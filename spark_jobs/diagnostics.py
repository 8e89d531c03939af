"""Diagnostic jobs that exercise the submit/track machinery of the Django side."""

from __future__ import annotations

import time

from pyspark.sql import SparkSession

from spark_jobs.common.config import JobConfig
from spark_jobs.common.report import Report


def run_fail(spark: SparkSession, config: JobConfig, report: Report) -> None:
    """Fail on purpose, once Spark is up (tests failure recording)."""
    raise RuntimeError("diagnostics.fail: deliberate failure")


def run_sleep(spark: SparkSession, config: JobConfig, report: Report) -> None:
    """Sleep ``--seconds`` with Spark up (tests timeouts and cancellation)."""
    time.sleep(config.seconds)
