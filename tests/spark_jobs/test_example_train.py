"""examples/train_stop_outcome.py on demo data: the model beats the majority-class baseline."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from pyspark.sql import SparkSession

from spark_jobs.main import main

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXAMPLE = Path(django_settings.BASE_DIR) / "examples" / "train_stop_outcome.py"


def load_example():
    spec = importlib.util.spec_from_file_location("train_stop_outcome", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    connection.vendor == "postgresql",
    reason="needs no particular database and takes minutes: run once per CI, in the SQLite run",
)
def test_the_example_beats_the_majority_baseline_on_demo_data(
    spark: SparkSession, tmp_path: Path, settings, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    settings.DATALAKE_URI = str(lake)
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    out = io.StringIO()
    call_command(
        "seed_demo", "--seed", "42", "--events", "6000", "--start-date", "2024-12-20",
        "--no-progress", stdout=out,
    )  # fmt: skip
    call_command("export_bronze", "--no-progress", stdout=out)
    for run_id, job, *args in [
        ("1", "silver.stop_executions"),
        ("2", "gold.training_sets.stop_outcome", "--version", "v1.0.0",
         "--as-of", "2030-01-01T00:00:00Z"),
    ]:  # fmt: skip
        assert main([job, "--lake-uri", str(lake), "--run-id", run_id, *args]) == 0

    example = load_example()
    result = example.evaluate(lake / "gold/training_sets/stop_outcome/v1.0.0")
    assert result.test_rows > 100
    assert result.baseline_auc == 0.5
    capsys.readouterr()
    assert example.main(["--lake", str(lake)]) == 0
    assert "majority-class baseline 0.500" in capsys.readouterr().out
    print(result)  # shown with pytest -rP
    assert result.model_auc >= 0.6, result  # the baseline's is 0.5
