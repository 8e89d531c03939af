"""What a backfill submits: only dates with input, chunked; the empty stretches skipped."""

from datetime import date

import pytest

from datalake.models import JobRun
from datalake.silver import (
    backfill,
    chunk_dates,
    empty_stretches,
    input_dates,
    partition_of,
)
from datalake.storage import get_storage


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("bronze/events/date=2024-03-01/part-0.parquet", ("date=2024-03-01", "2024-03-01")),
        (
            "silver/x/client_id=1/date=2024-03-01/part-0.parquet",
            ("client_id=1/date=2024-03-01", "2024-03-01"),
        ),
        ("bronze/events/date=2024-03-01/_metadata/part-0.json", None),
        ("bronze/events/_staging/date=2024-03-01/part-0.parquet", None),
        ("bronze/events/.tmp/date=2024-03-01/part-0.parquet", None),
        ("bronze/events/part-0.parquet", None),
        ("bronze/trades/client_id=1/part-0.parquet", None),
    ],
)
def test_partition_of(key, expected):
    assert partition_of(key) == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("days", "size", "expected"),
    [
        ([], 7, []),
        (["2024-01-01"], 7, [["2024-01-01"]]),
        (["2024-01-01", "2024-06-01", "2024-12-31"], 2,
         [["2024-01-01", "2024-06-01"], ["2024-12-31"]]),
        (["2024-01-01", "2024-01-02", "2024-01-03"], 1,
         [["2024-01-01"], ["2024-01-02"], ["2024-01-03"]]),
    ],
)  # fmt: skip
def test_chunk_dates(days, size, expected):
    chunks = chunk_dates([d(x) for x in days], size)
    assert [[str(x) for x in chunk] for chunk in chunks] == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("start", "end", "days", "expected"),
    [
        ("2024-01-01", "2024-12-31", [], [("2024-01-01", "2024-12-31")]),
        ("2024-01-01", "2024-01-03", ["2024-01-01", "2024-01-02", "2024-01-03"], []),
        ("2024-01-01", "2024-01-05", ["2024-01-01", "2024-01-05"],
         [("2024-01-02", "2024-01-04")]),
        ("2024-01-01", "2024-01-05", ["2024-01-03"],
         [("2024-01-01", "2024-01-02"), ("2024-01-04", "2024-01-05")]),
        ("2024-01-01", "2024-01-01", ["2024-01-01"], []),
    ],
)  # fmt: skip
def test_empty_stretches(start, end, days, expected):
    stretches = empty_stretches(d(start), d(end), [d(x) for x in days])
    assert [(str(a), str(b)) for a, b in stretches] == expected


@pytest.fixture
def lake(tmp_path, settings):
    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    settings.DATALAKE_SPARK_SUBMIT = "/nowhere/spark-submit"
    return get_storage()


def test_input_dates_lists_the_partitions_in_range(lake):
    for day in ("2023-12-31", "2024-02-29", "2024-07-01", "2025-01-01"):
        lake.put_bytes(b"x", f"bronze/events/date={day}/part-0.parquet")
    lake.put_bytes(b"{}", "bronze/events/date=2024-03-01/_metadata/part-0.json")
    lake.put_bytes(b"x", "bronze/events_v2/date=2024-05-01/part-0.parquet")
    found = input_dates("bronze.events", d("2024-01-01"), d("2024-12-31"))
    assert found == [d("2024-02-29"), d("2024-07-01")]


@pytest.mark.django_db
def test_a_year_without_input_costs_no_spark_submit(lake):
    """No input: one SKIPPED child, and spark-submit (which does not exist) is never run."""
    parent = backfill(
        start=d("2024-01-01"), end=d("2024-12-31"), input_name="bronze.events",
        output="silver.stop_executions_v2", overwrite=False,
    )  # fmt: skip
    assert parent.status == JobRun.Status.SKIPPED
    assert "no bronze.events data in 2024-01-01..2024-12-31" in parent.error
    [child] = parent.children.all()
    assert child.status == JobRun.Status.SKIPPED
    assert child.parameters["dates"] == 366
    assert (child.interval_start.date(), child.interval_end.date()) == (
        d("2024-01-01"),
        d("2025-01-01"),
    )
