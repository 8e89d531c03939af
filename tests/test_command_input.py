"""Bad input to a management command: one line and exit status 1 or 2, never a traceback.

Each row runs `manage.py` as a user would, for the real exit status. Status 2 is an
argparse error (usage, then one `error:` line); status 1 is one `CommandError:` line.
The rows' processes run a few at a time, before the rows are checked.
"""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from datalake.models import JobRun
from tests.conftest import test_database_url as database_url

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BACKFILL = ["backfill", "--input", "bronze.events", "--output", "silver.stop_executions"]
DAY = ["--start-date", "2024-03-01", "--end-date", "2024-03-01"]

CASES = [
    # export_bronze: impossible dates, hours and offsets; order of the range; sizes; names
    (["export_bronze", "--since", "2024-13-45"], 2, "--since: '2024-13-45' is not a date"),
    (["export_bronze", "--batch-size", "9223372036854775808"], 1,
     "--batch-size must be at most 10,000,000 rows"),
    (["export_bronze", "--verify", "--dry-run"], 1, "--verify and --dry-run exclude each other"),
    (["export_bronze", "--until", "2024-02-30"], 2, "day is out of range for month"),
    (["export_bronze", "--until", "2024-01-01T25:00"], 2, "hour must be in 0..23"),
    (["export_bronze", "--until", "2024-01-01T10:00+99:00"], 2, "--until: '2024-01-01T10:00"),
    (["export_bronze", "--until", "0001-01-01T00:00+01:00"], 2, "is out of range in UTC"),
    (["export_bronze", "--until", "yesterday"], 2, "'yesterday' is not a date or date-time"),
    (["export_bronze", "--until", "2999-01-01"], 1, "is in the future"),
    (["export_bronze", "--since", "2024-12-28", "--until", "2024-12-01"], 1, "--since must be"),
    (["export_bronze", "--batch-size", "0"], 1, "--batch-size must be a positive"),
    (["export_bronze", "--batch-size", "-5"], 1, "--batch-size must be a positive"),
    (["export_bronze", "--batch-size", "many"], 2, "invalid int value: 'many'"),
    (["export_bronze", "--dataset", "evnts"], 2, "invalid choice: 'evnts'"),
    # run_silver
    (["run_silver", "--job", "silver.nope"], 2, "invalid choice: 'silver.nope'"),
    (["run_silver", "--timeout", "0"], 2, "'0' must be a number of seconds above zero"),
    (["run_silver", "--timeout", "-3"], 2, "'-3' must be a number of seconds above zero"),
    (["run_silver", "--timeout", "nan"], 2, "'nan' must be a number of seconds above zero"),
    (["run_silver", "--timeout", "soon"], 2, "'soon' is not a number of seconds"),
    # backfill
    ([*BACKFILL, "--start-date", "2024-13-01", "--end-date", "2024-12-31"], 2,
     "--start-date: '2024-13-01' is not a date"),
    ([*BACKFILL, "--start-date", "2024-01-01", "--end-date", "2024-02-30"], 2,
     "day is out of range for month"),
    ([*BACKFILL, "--start-date", "2024-01-01", "--end-date", "9999-12-31"], 2, "is too late"),
    ([*BACKFILL, "--start-date", "2024-03-02", "--end-date", "2024-03-01"], 1,
     "--end-date 2024-03-01 is before --start-date 2024-03-02"),
    (["backfill", *DAY, "--input", "bronze.nope", "--output", "silver.stop_executions"], 1,
     "is built from bronze.events, not from 'bronze.nope'"),
    (["backfill", *DAY, "--input", "bronze.events", "--output", "silver.nope"], 1,
     "unknown output 'silver.nope'"),
    ([*BACKFILL, *DAY, "--chunk-days", "0"], 2, "--chunk-days: '0' must be greater than zero"),
    ([*BACKFILL, *DAY, "--chunk-days", "-1"], 2, "--chunk-days: '-1' must be greater"),
    ([*BACKFILL, *DAY, "--timeout", "-1"], 2, "--timeout: '-1' must be a number of seconds"),
    (["backfill", *DAY, "--output", "silver.stop_executions"], 2,
     "the following arguments are required: --input"),
    # seed_demo (argument parsing only)
    (["seed_demo", "--events", "-1"], 1, "--events must be zero or more, not -1"),
    (["seed_demo", "--days", "0"], 1, "--days must be at least 1, not 0"),
    (["seed_demo", "--days", "100000"], 1, "--days must be at most 366, not 100000"),
    (["seed_demo", "--events", "99999999999999999999"], 1, "--events must be at most 20,000,000"),
    (["seed_demo", "--clients", "0"], 1, "--clients must be at least 1, not 0"),
    (["seed_demo", "--start-date", "2024-02-30"], 1, "--start-date: '2024-02-30' is not a date"),
    (["seed_demo", "--start-date", "9999-12-31", "--days", "2"], 1, "does not end before"),
    (["seed_demo", "--seed", "x"], 2, "invalid int value: 'x'"),
]  # fmt: skip


def manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def lake_env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DATALAKE_LOG_LEVEL": "WARNING",
        "DATALAKE_URI": str(root / "lake"),
        "DATALAKE_WORK_DIR": str(root / "work"),
    }


@pytest.fixture(scope="module")
def outcomes(
    django_db_setup, tmp_path_factory
) -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """Run every row of CASES against the test database and an empty lake."""
    env = lake_env(tmp_path_factory.mktemp("commands"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(lambda args: manage(args, env), [args for args, _, _ in CASES])
        return {tuple(args): result for (args, _, _), result in zip(CASES, done, strict=True)}


def assert_one_line_error(done: subprocess.CompletedProcess, status: int, message: str) -> str:
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    # The failure alert (datalake.notify, logged at ERROR) is another channel than the
    # command's own message: the message itself is one line.
    lines = [line for line in done.stderr.strip().splitlines() if "datalake.notify:" not in line]
    if status == 1:
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("CommandError: ")
    else:
        assert ": error: " in lines[-1], done.stderr
    assert message in lines[-1]
    return lines[-1]


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "status", "message"), CASES)
def test_bad_input_is_one_line_and_a_status(outcomes, args, status, message):
    assert_one_line_error(outcomes[tuple(args)], status, message)
    assert not JobRun.objects.exists()


@pytest.mark.parametrize("command", [["run_silver", "--job", "silver.portfolio_snapshots"],
                                     [*BACKFILL, *DAY]])  # fmt: skip
@pytest.mark.django_db(transaction=True)
def test_a_missing_spark_submit_is_one_line_and_a_failed_run(command, tmp_path):
    """A configured spark-submit that is not there: one line, and the run says why."""
    if command[0] == "backfill":  # a date with input, or nothing would be submitted
        day = tmp_path / "lake/bronze/events/date=2024-03-01"
        day.mkdir(parents=True)
        (day / "part-0.parquet").write_bytes(b"x")
    env = {**lake_env(tmp_path), "SPARK_SUBMIT": "/nowhere/spark-submit"}
    line = assert_one_line_error(manage(command, env), 1, "SPARK_SUBMIT=/nowhere/spark-submit")
    assert line.endswith("is not an executable file")
    runs = list(JobRun.objects.all())
    assert runs
    assert all(r.status == JobRun.Status.FAILED for r in runs)
    assert all("SPARK_SUBMIT=/nowhere/spark-submit" in r.error for r in runs)
