"""Backfill refuses bad requests before Spark starts (no run recorded, nothing written)."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from datalake.models import JobRun
from datalake.storage import get_storage

pytestmark = pytest.mark.django_db

SEED_EXAMPLE = ["--start-date", "2024-01-01", "--end-date", "2024-12-27",
                "--input", "bronze.events", "--output", "silver.stop_executions_v2"]  # fmt: skip


@pytest.fixture
def lake(tmp_path, settings):
    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    return get_storage()


def replace(args: list[str], option: str, value: str) -> list[str]:
    args = list(args)
    args[args.index(option) + 1] = value
    return args


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (replace(SEED_EXAMPLE, "--start-date", "2024-13-01"), "is not a date"),
        (replace(SEED_EXAMPLE, "--end-date", "2023-12-31"), "is before --start-date"),
        (replace(SEED_EXAMPLE, "--input", "bronze.orders"), "built from bronze.events"),
        (replace(SEED_EXAMPLE, "--output", "silver.stop_execution_v2"), "unknown output"),
        (replace(SEED_EXAMPLE, "--output", "gold.stop_outcome"), "unknown output"),
        ([*SEED_EXAMPLE, "--chunk-days", "0"], "--chunk-days: .0. must be greater than zero"),
    ],
)
def test_bad_requests_are_refused_before_spark(lake, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("backfill", *args)
    assert not JobRun.objects.exists()


def test_existing_partitions_are_listed_without_overwrite(lake):
    for day in ("2024-03-01", "2024-03-02"):
        lake.put_bytes(b"x", f"silver/stop_executions_v2/client_id=1/date={day}/part-0.parquet")
    lake.put_bytes(b"x", "silver/stop_executions_v2/client_id=1/date=2025-01-01/part-0.parquet")
    lake.put_bytes(b"x", "silver/stop_executions/client_id=1/date=2024-03-01/part-0.parquet")
    with pytest.raises(CommandError) as raised:
        call_command("backfill", *SEED_EXAMPLE)
    message = str(raised.value)
    assert "already has 2 partitions in range" in message
    assert "client_id=1/date=2024-03-01, client_id=1/date=2024-03-02" in message
    assert not JobRun.objects.exists()
