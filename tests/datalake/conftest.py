"""Fixtures shared by the datalake app's tests."""

import pytest


@pytest.fixture
def recording_submit(tmp_path, settings):
    """A spark-submit that records its command line and fails (no Spark needed)."""
    script = tmp_path / "spark-submit"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\nexit 1\n')
    script.chmod(0o755)
    settings.DATALAKE_SPARK_SUBMIT = str(script)
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_SPARK_CLASS_ARCHIVE_DIR = "off"
    return lambda: (tmp_path / "argv").read_text().splitlines()
