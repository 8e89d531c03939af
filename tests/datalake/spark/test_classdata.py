"""The driver's class-data archive: which JVM option a run gets, and publishing it."""

from pathlib import Path

import pytest

from datalake.spark import classdata
from datalake.spark.classdata import class_archive
from datalake.spark.submit import SubmitConfig, build_command

pytestmark = pytest.mark.unit


def test_a_first_run_writes_a_temporary_archive_published_only_if_it_succeeds(tmp_path: Path):
    archive = class_archive(tmp_path / "classes")
    assert archive.partial is not None
    assert archive.java_option == f"-XX:ArchiveClassesAtExit={archive.partial}"

    # A run that failed (or was killed before its JVM wrote anything) publishes nothing.
    archive.partial.write_bytes(b"half")
    assert archive.finish(succeeded=False) is False
    assert not archive.partial.exists()
    assert not archive.path.exists()
    retry = class_archive(tmp_path / "classes")
    assert retry.finish(succeeded=True) is False  # the JVM wrote no archive
    assert not retry.path.exists()

    # A run that succeeded publishes what its JVM wrote; the next runs use it.
    done = class_archive(tmp_path / "classes")
    done.partial.write_bytes(b"classes")
    assert done.finish(succeeded=True) is True
    assert done.path.read_bytes() == b"classes"
    again = class_archive(tmp_path / "classes")
    assert (again.path, again.partial) == (done.path, None)
    assert again.java_option == f"-XX:SharedArchiveFile={done.path}"
    assert again.finish(succeeded=True) is False


def test_concurrent_first_runs_write_to_distinct_files(tmp_path: Path):
    one, two = class_archive(tmp_path), class_archive(tmp_path)
    assert one.path == two.path
    assert one.partial != two.partial


def test_another_jdk_or_pyspark_gets_another_archive(tmp_path: Path, monkeypatch):
    first = class_archive(tmp_path).path
    with monkeypatch.context() as patch:
        patch.setattr(classdata, "java_identity", lambda: "/opt/jdk-21/bin/java:1")
        assert class_archive(tmp_path).path != first
    with monkeypatch.context() as patch:
        patch.setattr(classdata, "version", lambda name: "0.0.1")
        assert class_archive(tmp_path).path != first
    assert class_archive(tmp_path).path == first


def test_the_archive_option_comes_before_the_configured_driver_options():
    config = SubmitConfig(conf={"spark.driver.extraJavaOptions": "-XX:+UseSerialGC"})
    command = build_command(
        config, main="m.py", args=[], driver_java_options="-XX:SharedArchiveFile=/a.jsa"
    )
    options = [a for a in command if a.startswith("spark.driver.extraJavaOptions=")]
    assert options == [
        "spark.driver.extraJavaOptions=-XX:SharedArchiveFile=/a.jsa -XX:+UseSerialGC"
    ]
    plain = build_command(SubmitConfig(), main="m.py", args=[])
    assert not any(a.startswith("spark.driver.extraJavaOptions=") for a in plain)
