"""One local SparkSession for the whole test run, shared by every Spark test."""

from __future__ import annotations

import os
import sys
import time
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

pyspark = pytest.importorskip("pyspark")
from pyspark.sql import SparkSession  # noqa: E402


def _spark_frames_only_in_assert_dataframe_equal() -> None:
    """Let ``assertDataFrameEqual`` run when ``pyspark.pandas`` cannot be imported.

    pyspark 4.3's pandas API does not load under pandas 3 (pinned in requirements.txt),
    yet assertDataFrameEqual imports it whenever pandas is installed, only to recognise
    pandas-on-Spark frames. Stand-ins that match no frame keep it on its Spark path.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import pyspark.pandas  # noqa: F401
    except ImportError:
        frames = types.ModuleType("pyspark.pandas")
        frames.DataFrame = type("DataFrame", (), {})  # type: ignore[attr-defined]
        utils = types.ModuleType("pyspark.testing.pandasutils")
        utils.PandasOnSparkTestUtils = type("PandasOnSparkTestUtils", (), {})  # type: ignore[attr-defined]
        sys.modules["pyspark.pandas"] = frames
        sys.modules["pyspark.testing.pandasutils"] = utils


_spark_frames_only_in_assert_dataframe_equal()

# PySpark hands collected timestamps back as naive datetimes in the Python process's zone:
# make that UTC, like the session's, so expected values are plain UTC wall-clock times.
os.environ["TZ"] = "UTC"
time.tzset()


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """Return the session-wide local SparkSession (2 cores, 4 shuffle partitions, UTC)."""
    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("robson-spark-tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.sql.adaptive.enabled", "false")
        # Tiny data: compiling less beats running faster (C1 JIT only, no stage codegen).
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.sql.codegen.wholeStage", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """Return an empty lake directory for one test."""
    root = tmp_path / "lake"
    root.mkdir()
    return root
