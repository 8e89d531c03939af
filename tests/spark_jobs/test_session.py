"""Session settings a job changes for a while are given back."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from spark_jobs.common.session import shuffle_partitions

pytestmark = pytest.mark.spark

KEY = "spark.sql.shuffle.partitions"


def test_shuffle_partitions_are_capped_inside_the_block_and_restored_after(
    spark: SparkSession,
) -> None:
    configured = spark.conf.get(KEY)
    with shuffle_partitions(spark, 1):
        assert spark.conf.get(KEY) == "1"
    assert spark.conf.get(KEY) == configured
    with shuffle_partitions(spark, 10_000):  # never raised above the configured number
        assert spark.conf.get(KEY) == configured
    with pytest.raises(RuntimeError), shuffle_partitions(spark, 1):
        raise RuntimeError("the job failed")
    assert spark.conf.get(KEY) == configured
