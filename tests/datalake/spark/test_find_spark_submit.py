"""Which spark-submit runs: the setting, else pyspark's own, else the venv's, else PATH."""

import subprocess
import sys
from pathlib import Path

import pytest

from datalake.spark.submit import SparkSubmitNotFound, find_spark_submit, pyspark_spark_submit

ROOT = Path(__file__).resolve().parents[3]


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def places(tmp_path):
    """A pyspark wheel's bin, a venv's bin and a directory on PATH, each with a spark-submit."""
    return {
        "bundled": executable(tmp_path / "site-packages/pyspark/bin/spark-submit"),
        "venv": executable(tmp_path / "venv/bin/spark-submit"),
        "path": executable(tmp_path / "usr/bin/spark-submit"),
        "configured": executable(tmp_path / "opt/spark/bin/spark-submit"),
        "tmp": tmp_path,
    }


@pytest.mark.unit
@pytest.mark.parametrize(
    ("configured", "have", "expected"),
    [
        (None, {"bundled", "venv", "path"}, "bundled"),
        (None, {"venv", "path"}, "venv"),
        (None, {"path"}, "path"),
        ("configured", {"bundled", "venv", "path"}, "configured"),
        ("spark-submit", {"bundled", "venv", "path"}, "path"),  # a bare name: looked up on PATH
    ],
)
def test_which_spark_submit_is_chosen(places, configured, have, expected):
    for name in {"bundled", "venv", "path"} - have:
        places[name].unlink()
    found = find_spark_submit(
        str(places["configured"]) if configured == "configured" else configured,
        bundled=places["bundled"],
        interpreter=str(places["tmp"] / "venv/bin/python"),
        path=str(places["path"].parent),
    )
    assert found == str(places[expected])


@pytest.mark.unit
@pytest.mark.parametrize(
    ("configured", "message"),
    [
        (None, "no spark-submit found: pyspark is not installed for .* set SPARK_SUBMIT"),
        ("/nowhere/spark-submit", r"SPARK_SUBMIT=/nowhere/spark-submit is not an executable file$"),
        ("spark-submit-3", "SPARK_SUBMIT=spark-submit-3 is not an executable file on PATH"),
    ],
)
def test_no_spark_submit_is_one_clear_message(tmp_path, configured, message):
    with pytest.raises(SparkSubmitNotFound, match=message):
        find_spark_submit(
            configured,
            bundled=tmp_path / "pyspark/bin/spark-submit",
            interpreter=str(tmp_path / "bin/python"),
            path=str(tmp_path),
        )


def test_the_pyspark_wheel_spark_submit_runs_without_the_venv_on_path():
    """The venv's python run without activating it finds and runs pyspark's spark-submit."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    found = subprocess.run(
        [sys.executable, "-c", "from datalake.spark.submit import default_spark_submit as d;"
         " print(d(None))"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert found == str(pyspark_spark_submit())
    version = subprocess.run(
        [found, "--version"], env=env, capture_output=True, text=True, timeout=120
    )
    assert version.returncode == 0, version.stderr[-2000:]
    assert "version" in version.stdout + version.stderr
