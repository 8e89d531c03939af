"""gold.features.stop_execution_features: refreshed by main() from a tiny lake, in the
layout the lookups read, with a parity check that catches a planted difference."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs.gold.features import FEATURE_NAMES, FEATURES
from spark_jobs.gold.online_features import (
    ROW_COLUMNS,
    definitions_version,
    feature_set_uri,
    merge_earlier,
    parity_check,
)
from spark_jobs.gold.online_features import read_inputs as online_inputs
from spark_jobs.main import main
from tests.spark_jobs.test_training_sets import built_lake, run  # noqa: F401

pytestmark = pytest.mark.spark

JOB = "gold.features.stop_execution_features"
ROOT = Path("gold/features/stop_execution_features")


def rows(lake: Path) -> list[dict]:
    found = []
    for path in sorted((lake / ROOT).rglob("*.parquet")):
        client, day = path.parent.parent.name, path.parent.name
        for row in pq.read_table(path).to_pylist():
            client_id = int(client.split("=")[1])
            found.append({**row, "client_id": client_id, "_partition": f"{client}/{day}"})
    return sorted(found, key=lambda r: (r["client_id"], r["symbol"]))


def test_refresh_writes_latest_values_per_pair_with_parity(
    built_lake: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    lake = built_lake
    code, result = run(lake, tmp_path, JOB, "--as-of", "2024-12-27T14:00:00Z")
    assert code == 0, result["error"]
    published = rows(lake)
    # Clients 1 and 2 each had stop executions on BTCUSDC in the last 7 days: one row each.
    assert [(r["client_id"], r["symbol"]) for r in published] == [(1, "BTCUSDC"), (2, "BTCUSDC")]
    assert {r["_partition"] for r in published} == {
        "client_id=1/date=2024-12-27",
        "client_id=2/date=2024-12-27",
    }
    for row in published:
        assert row["as_of"] == datetime(2024, 12, 27, 14, 0, tzinfo=UTC)
        assert row["computed_at"] is not None
        assert row["feature_version"] == definitions_version()
        assert row["hour_of_day"] == 14
        assert row["day_of_week"] == 4
        assert row["stop_distance_pct"] is not None  # entry fills an hour before the stop
        assert row["volume_24h"] is not None
    checks = {c["check"]: c for c in result["checks"]}
    assert checks["online_offline_parity"]["passed"], checks["online_offline_parity"]
    document = json.loads((lake / ROOT / "_feature_set.json").read_text())
    assert [f["name"] for f in document["features"]] == list(FEATURE_NAMES)
    assert document["version"] == definitions_version()
    assert not (lake / "_staging").exists() or not any((lake / "_staging").iterdir())

    # Without --as-of: the end of the newest kline's minute (the newest complete data),
    # 13:00, so this refresh is back-dated against the 14:00 one (another run id).
    result_file = tmp_path / "result-back-dated.json"
    code = main([JOB, "--lake-uri", str(lake), "--run-id", "10",
                 "--result-file", str(result_file)])  # fmt: skip
    result = json.loads(result_file.read_text())
    assert code == 0, result["error"]
    assert result["details"]["as_of"] == "2024-12-27T13:00:00+00:00"
    # The partition of that day keeps one row per pair: the newer, 14:00, not the 13:00
    # values of the later run, so lookups never go back in time.
    assert [(r["as_of"].hour, r["refresh_run_id"]) for r in rows(lake)] == [(14, 9), (14, 9)]

    # The parity job on the published rows.
    code, result = run(lake, tmp_path, "gold.features.parity", "--samples", "5")
    assert code == 0, result["error"]
    assert result["checks"][0]["passed"]


def test_parity_catches_a_planted_difference(
    spark: SparkSession,
    built_lake: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    lake = built_lake
    assert run(lake, tmp_path, JOB, "--as-of", "2024-12-27T14:00:00Z")[0] == 0
    uri = feature_set_uri("file://" + str(lake))
    published = spark.read.option("pathGlobFilter", "*.parquet").parquet(uri)
    t = datetime(2024, 12, 27, 14, tzinfo=UTC)
    _, inputs = online_inputs(spark, "file://" + str(lake), t, 7)
    assert parity_check(published, inputs, 5, "s").passed
    planted = published.withColumn(
        "consecutive_failures_1h",
        F.when(F.col("client_id") == 2, F.col("consecutive_failures_1h") + 1).otherwise(
            F.col("consecutive_failures_1h")
        ),
    )
    result = parity_check(planted, inputs, 5, "s")
    assert not result.passed
    assert result.critical
    assert "1 of 2" in result.observed
    assert "2/BTCUSDC" in result.observed


def test_merge_keeps_the_newer_row_of_each_pair(spark: SparkSession) -> None:
    t = datetime(2024, 12, 27, 13, tzinfo=UTC)
    schema = ", ".join(
        [
            "client_id int, symbol string, as_of timestamp, computed_at timestamp",
            "operation_id bigint, stop_price decimal(20,8)",
            *[f"{f.name} {f.type}" for f in FEATURES],
            "feature_version string, refresh_run_id bigint, date date",
        ]
    )

    def frame(*rows: tuple[str, int, int]) -> DataFrame:
        """Rows (symbol, hour of as_of, run id) of client 1 on 2024-12-27."""
        values = [(1, symbol, t.replace(hour=hour), t, 7, None, *[None] * len(FEATURES),
                   "v", run, t.date()) for symbol, hour, run in rows]  # fmt: skip
        return spark.createDataFrame(values, schema)

    fresh = frame(("A", 13, 2), ("B", 13, 2), ("C", 13, 2))
    earlier = frame(("A", 14, 1), ("B", 9, 1), ("D", 9, 1), ("E", 15, 1), ("C", 13, 1))
    merged = merge_earlier(fresh, earlier, t)
    assert merged.columns == ROW_COLUMNS
    expected = frame(("A", 14, 1), ("B", 13, 2), ("C", 13, 2), ("D", 9, 1), ("E", 15, 1))
    assertDataFrameEqual(merged, expected)
