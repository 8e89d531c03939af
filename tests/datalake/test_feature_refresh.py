"""refresh_features: a successful run switches the cache to it; a failed one (parity)
leaves readers on the last good version. spark-submit is a stand-in that reports a
result (the Spark job itself is tested in tests/spark_jobs/test_online_features.py)."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError

from datalake import tasks
from datalake.feature_refresh import refresh_features
from datalake.features import current_version, get_latest_features
from datalake.models import JobRun
from datalake.spark.runner import SparkJobFailed
from tests.datalake.feature_rows import row, write_partition

pytestmark = pytest.mark.django_db

OLD = datetime(2024, 12, 27, 14, tzinfo=UTC)
FAKE = """#!{python}
import json, sys
argv = sys.argv[1:]
result = argv[argv.index("--result-file") + 1]
spec = json.load(open({spec!r}))
open({argv_file!r}, "w").write("\\n".join(argv))
json.dump(spec["result"], open(result, "w"))
sys.exit(spec["code"])
"""


@pytest.fixture
def fake_spark(tmp_path, settings):
    """Return a function setting what the stand-in spark-submit reports next."""
    spec = tmp_path / "spec.json"
    script = tmp_path / "spark-submit"
    script.write_text(FAKE.format(python=sys.executable, spec=str(spec),
                                  argv_file=str(tmp_path / "argv")))  # fmt: skip
    script.chmod(0o755)
    settings.DATALAKE_SPARK_SUBMIT = str(script)
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_SPARK_CLASS_ARCHIVE_DIR = "off"
    caches["features"].clear()

    def report(code: int, partitions: list[str], passed: bool = True) -> None:
        dataset = "gold.features.stop_execution_features"
        check = {"dataset": dataset, "check": "online_offline_parity", "passed": passed,
                 "observed": "0 of 2 differ"}  # fmt: skip
        details = {"as_of": OLD.isoformat(), "partitions": partitions, "pairs": 1}
        result = {"status": "succeeded" if code == 0 else "checks_failed", "checks": [check],
                  "outputs": {dataset: 1}, "details": details}  # fmt: skip
        spec.write_text(json.dumps({"code": code, "result": result}))

    yield report
    caches["features"].clear()


def test_success_switches_the_cache_and_failed_parity_keeps_the_last_good(
    fake_spark, tmp_path
) -> None:
    lake = tmp_path / "lake"
    first = write_partition(lake, 1, "2024-12-27", [row("BTCUSDC", OLD, 1, "1.0")])
    fake_spark(0, [first])
    run = refresh_features(as_of=OLD)
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.parameters["cache_entries"] == 1
    assert current_version() == run.pk
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[argv.index("--as-of") + 1] == "2024-12-27T14:00:00+00:00"
    assert get_latest_features(1, "BTCUSDC")["source"] == "cache"

    # The next run's parity fails: nothing is loaded, readers stay on the first run.
    second = write_partition(lake, 1, "2024-12-28", [row("BTCUSDC", OLD, 2, "9.0")])
    fake_spark(3, [second], passed=False)
    with pytest.raises(SparkJobFailed, match="online_offline_parity"):
        refresh_features()
    failed = JobRun.objects.get(job_name="gold.features.stop_execution_features", status="FAILED")
    assert failed.checks.get(name="online_offline_parity").passed is False
    assert current_version() == run.pk
    answer = get_latest_features(1, "BTCUSDC")
    assert (answer["source"], str(answer["features"]["stop_distance_pct"])) == ("cache", "1.0000")


def test_command_and_task(fake_spark, tmp_path) -> None:
    key = write_partition(tmp_path / "lake", 1, "2024-12-27", [row("BTCUSDC", OLD, 1)])
    fake_spark(0, [key])
    out = io.StringIO()
    call_command("refresh_features", "--as-of", "2024-12-27T14:00:00Z", stdout=out)
    assert "1 pairs as of 2024-12-27T14:00:00+00:00" in out.getvalue()
    run_id = tasks.refresh_features.apply().get()
    assert JobRun.objects.get(pk=run_id).trigger == JobRun.Trigger.SCHEDULE
    assert current_version() == run_id
    with pytest.raises(CommandError, match="not an ISO time"):
        call_command("refresh_features", "--as-of", "yesterday")


def test_parity_command_reports_a_difference_between_served_and_published(
    fake_spark, tmp_path
) -> None:
    lake = tmp_path / "lake"
    key = write_partition(lake, 1, "2024-12-27", [row("BTCUSDC", OLD, 1, "1.0")])
    fake_spark(0, [key])
    refresh_features()
    out = io.StringIO()
    call_command("check_feature_parity", "--samples", "5", stdout=out)
    assert "parity OK: 1 served values match" in out.getvalue()
    # Plant a difference: the published row changes but the cache still serves the old one.
    write_partition(lake, 1, "2024-12-27", [row("BTCUSDC", OLD, 1, "1.5")])
    with pytest.raises(CommandError, match=r"1 of 1 served values differ.*1/BTCUSDC"):
        call_command("check_feature_parity", "--samples", "5", stdout=out)


def test_a_back_dated_refresh_serves_the_same_values_cached_or_not(fake_spark, tmp_path) -> None:
    """refresh_features --as-of <past> writes its older partition but the newest one stays
    what lookups serve: the cache agrees with a miss, which reads the newest partition."""
    lake = tmp_path / "lake"
    newer = OLD + timedelta(days=1)
    now_key = write_partition(lake, 1, "2024-12-28", [row("BTCUSDC", newer, 1, "1.0")])
    fake_spark(0, [now_key])
    refresh_features()
    # The back-dated refresh writes 2024-12-27 for client 1, and for client 2, which has
    # nothing newer.
    back = [write_partition(lake, 1, "2024-12-27", [row("BTCUSDC", OLD, 2, "9.0")]),
            write_partition(lake, 2, "2024-12-27", [row("ETHUSDC", OLD, 2, "5.0")])]  # fmt: skip
    fake_spark(0, back)
    call_command("refresh_features", "--as-of", "2024-12-27T14:00:00Z", stdout=io.StringIO())
    pairs = [(1, "BTCUSDC"), (2, "ETHUSDC")]
    cached = [get_latest_features(*pair) for pair in pairs]
    assert [a["source"] for a in cached] == ["cache", "cache"]
    caches["features"].clear()  # a process that never saw the refresh
    uncached = [get_latest_features(*pair) for pair in pairs]
    assert [a["source"] for a in uncached] == ["parquet", "parquet"]
    for hit, miss in zip(cached, uncached, strict=True):
        assert (hit["as_of"], hit["features"]) == (miss["as_of"], miss["features"])
    assert [(a["as_of"], str(a["features"]["stop_distance_pct"])) for a in cached] == [
        (newer, "1.0000"),
        (OLD, "5.0000"),
    ]
