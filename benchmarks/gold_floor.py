"""The I/O floor of the gold job: read its inputs once and write its output once, nothing else.

    python -m benchmarks.gold_floor [--sizes 1000000,10000000]

Needs the work lakes that ``python -m benchmarks.gold_bench --sizes N --keep`` leaves under
``/tmp/gold-bench/work-<N>/``. In one local SparkSession (2 GB driver, as the bench's
``spark-submit``), it times: listing and hashing the input files
(``training_sets.list_inputs``, the build's fingerprint), reading silver.stop_executions,
bronze.orders and bronze.klines once each (every column, the ``noop`` sink), and writing
the published train split once in ``date=`` partitions (its rows cached first, not
timed). No feature is computed: no Spark build of the training set can take less than the
sum, which is what to set against DuckDB's whole build.
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from benchmarks.silver_bench import parse_bench_args
from spark_jobs.common.bronze import BRONZE_KLINES, BRONZE_ORDERS
from spark_jobs.common.datasets import read_files
from spark_jobs.common.lake import LakeFS
from spark_jobs.common.session import configure
from spark_jobs.gold import training_sets
from spark_jobs.silver import stop_executions

WORK = Path("/tmp/gold-bench")


def floor(spark: SparkSession, size: int) -> dict[str, float]:
    """Return the seconds of each I/O step on the kept work lake of ``size`` events."""
    lake = WORK / f"work-{size}" / "lake"
    published = lake / "gold/training_sets/stop_outcome/v1.0.0/train"
    if not published.is_dir():
        sys.exit(f"no kept work lake at {lake}: run python -m benchmarks.gold_bench"
                 f" --sizes {size} --keep first")  # fmt: skip
    root = lake.as_uri()
    seconds: dict[str, float] = {}

    def timed(name: str, step) -> Any:
        started = time.monotonic()
        result = step()
        seconds[name] = round(time.monotonic() - started, 1)
        return result

    def read(frame: DataFrame) -> None:
        frame.write.format("noop").mode("overwrite").save()

    layouts = [stop_executions.LAYOUT, BRONZE_ORDERS, BRONZE_KLINES]
    # The session's first job, as in the build.
    fs = LakeFS(spark)
    inputs = timed("list and hash inputs",
                   lambda: training_sets.list_inputs(fs, root, layouts, "9999-12-31"))  # fmt: skip
    for layout, name in ((stop_executions.LAYOUT, "read silver.stop_executions"),
                         (BRONZE_ORDERS, "read bronze.orders"),
                         (BRONZE_KLINES, "read bronze.klines")):  # fmt: skip
        keys = inputs.keys(layout.dataset)
        timed(name, lambda layout=layout, keys=keys: read(read_files(spark, root, layout, keys)))
    rows = spark.read.parquet(str(published)).persist()
    rows.count()
    out = Path(tempfile.mkdtemp(prefix="gold-floor-"))
    try:
        timed("write the train split", lambda: (
            rows.repartition("date").sortWithinPartitions("date", "sample_id")
            .write.mode("overwrite").partitionBy("date").parquet(str(out / "train"))
        ))  # fmt: skip
    finally:
        rows.unpersist()
        shutil.rmtree(out, ignore_errors=True)
    return seconds


def main() -> None:
    args = parse_bench_args(__doc__, None)
    spark = (
        SparkSession.builder.master("local[*]")
        .config("spark.driver.memory", "2g")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    configure(spark)
    for size in args.sizes:
        seconds = floor(spark, size)
        print(f"{size:,} events:")
        for name, value in seconds.items():
            print(f"  {name:<32} {value:7.1f} s")
        print(f"  {'sum':<32} {sum(seconds.values()):7.1f} s")
    spark.stop()


if __name__ == "__main__":
    main()
