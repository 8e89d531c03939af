"""The jobs' command line and lake paths: pure functions, no Spark."""

from __future__ import annotations

from datetime import date

import pytest

from spark_jobs.common.config import JOBS, UsageError, lake_root, parse_args
from spark_jobs.common.lake import dataset_uri, partition_path, staging_uri
from spark_jobs.main import ENTRY_POINTS

pytestmark = pytest.mark.unit

BASE = ["--lake-uri", "s3a://lake/prefix/", "--run-id", "42"]


def test_a_full_command_line() -> None:
    config = parse_args(
        ["silver.stop_executions", *BASE, "--result-file", "/tmp/r.json", "--dates",
         "2024-12-28,2024-12-27,2024-12-28", "--output", "silver.stop_executions_v2", "--overwrite",
         "--new-files", "bronze/events/date=2024-12-28/part-00000002-0000.parquet,"
         "bronze/events/date=2024-12-27/part-00000001-0003.parquet"]
    )  # fmt: skip
    assert config.job == "silver.stop_executions"
    assert config.lake_uri == "s3a://lake/prefix"
    assert config.run_id == "42"
    assert config.result_file == "/tmp/r.json"
    assert config.dates == (date(2024, 12, 27), date(2024, 12, 28))
    assert config.mode == "dates"
    assert config.new_files == (
        "bronze/events/date=2024-12-27/part-00000001-0003.parquet",
        "bronze/events/date=2024-12-28/part-00000002-0000.parquet",
    )
    assert config.describe_scope() == "dates 2024-12-27,2024-12-28 (2 new files)"
    assert config.output == "silver.stop_executions_v2"
    assert config.overwrite is True


@pytest.mark.parametrize(
    ("args", "mode", "output"),
    [
        (["silver.operations"], "full", "silver.operations"),
        (["silver.portfolio_snapshots", "--start-date", "2024-01-01", "--end-date", "2024-12-27"],
         "range", "silver.portfolio_snapshots"),
        (["diagnostics.sleep", "--seconds", "2"], "full", None),
    ],
)  # fmt: skip
def test_modes_and_default_outputs(args: list[str], mode: str, output: str | None) -> None:
    config = parse_args([args[0], *BASE, *args[1:]])
    assert (config.mode, config.output) == (mode, output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["silver.nope"], "unknown job"),
        (["silver.operations", "--dates", "27/12/2024"], "not a date"),
        (["silver.operations", "--start-date", "2024-01-02"], "go together"),
        (["silver.operations", "--start-date", "2024-01-02", "--end-date", "2024-01-01"],
         "is after"),
        (["silver.operations", "--dates", "2024-01-01", "--start-date", "2024-01-01",
          "--end-date", "2024-01-02"], "not both"),
        (["silver.operations", "--output", "silver.stop_executions"], "suffixed variant"),
        (["silver.operations", "--output", "Silver.Operations"], "must look like"),
        (["silver.operations", "--bogus"], "unrecognized arguments"),
        (["silver.operations", "--seconds", "-1"], "must not be negative"),
        (["silver.operations", "--new-files", "bronze/orders/date=2024-01-01/p.parquet"],
         "goes with --dates"),
        (["silver.operations", "--dates", "2024-01-01", "--new-files", " , "], "is empty"),
        (["silver.operations", "--dates", "2024-01-01", "--new-files", "/etc/passwd"],
         "not a bronze file key"),
        (["silver.operations", "--dates", "2024-01-01", "--new-files",
          "bronze/events/date=2024-01-01/../../../secret.parquet"], "not a bronze file key"),
    ],
)  # fmt: skip
def test_bad_command_lines_are_refused(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_args([args[0], *BASE, *args[1:]])


def test_run_id_must_be_a_plain_identifier() -> None:
    with pytest.raises(UsageError, match="plain identifier"):
        parse_args(["silver.operations", "--lake-uri", "x", "--run-id", "../../etc"])


@pytest.mark.parametrize(
    ("uri", "root"),
    [
        ("s3a://bucket/lake/", "s3a://bucket/lake"),
        ("s3://bucket", "s3a://bucket"),
        ("/var/lake/", "file:///var/lake"),
        ("file:/var/lake", "file:///var/lake"),
    ],
)
def test_lake_root(uri: str, root: str) -> None:
    assert lake_root(uri) == root


def test_paths() -> None:
    assert dataset_uri("s3a://b/l", "silver.stop_executions_v2") == (
        "s3a://b/l/silver/stop_executions_v2"
    )
    assert staging_uri("file:///l", "7", "silver.operations") == (
        "file:///l/_staging/run-7/silver/operations"
    )
    assert partition_path(("client_id", "date"), [1, date(2024, 12, 27)]) == (
        "client_id=1/date=2024-12-27"
    )
    assert partition_path(("strategy_id", "date"), {"date": "2024-12-27", "strategy_id": 0}) == (
        "strategy_id=0/date=2024-12-27"
    )


def test_every_job_has_an_entry_point() -> None:
    assert set(ENTRY_POINTS) == set(JOBS)
