"""The spark-submit command line is built from settings: pure, tested as tables."""

import zipfile

import pytest

from datalake.silver import UnknownDataset, resolve_output
from datalake.spark.submit import SubmitConfig, build_command, lake_conf, package_jobs

pytestmark = pytest.mark.unit


def conf_pairs(command: list[str]) -> dict[str, str]:
    pairs = [command[i + 1] for i, arg in enumerate(command) if arg == "--conf"]
    return dict(p.split("=", 1) for p in pairs)


@pytest.mark.parametrize(
    ("master", "deploy_mode"),
    [("local[*]", "client"), ("spark://spark-master:7077", "client"),
     ("k8s://https://kubernetes.default.svc", "cluster")],
)  # fmt: skip
def test_master_and_resources_come_from_config(master, deploy_mode):
    config = SubmitConfig(
        spark_submit="/opt/spark/bin/spark-submit", master=master, deploy_mode=deploy_mode,
        driver_memory="2G", executor_memory="4G", conf={"spark.executor.instances": "1"},
    )  # fmt: skip
    command = build_command(config, main="/app/spark_jobs/main.py", args=["silver.x", "--a"],
                            py_files="/tmp/jobs.zip", app_name="robson-x")  # fmt: skip
    assert command[0] == "/opt/spark/bin/spark-submit"
    assert command[command.index("--master") + 1] == master
    assert command[command.index("--deploy-mode") + 1] == deploy_mode
    assert command[command.index("--driver-memory") + 1] == "2G"
    assert command[command.index("--executor-memory") + 1] == "4G"
    assert command[command.index("--py-files") + 1] == "/tmp/jobs.zip"
    assert command[-3:] == ["/app/spark_jobs/main.py", "silver.x", "--a"]
    conf = conf_pairs(command)
    assert conf["spark.executor.instances"] == "1"
    assert conf["spark.sql.session.timeZone"] == "UTC"


def test_settings_conf_wins_over_defaults():
    config = SubmitConfig(conf={"spark.sql.session.timeZone": "UTC", "spark.x": "1"})
    command = build_command(config, main="m.py", args=[], extra_conf={"spark.x": "0"})
    assert conf_pairs(command)["spark.x"] == "1"


@pytest.mark.parametrize(
    ("uri", "endpoint", "style", "expected"),
    [
        ("/var/lake", None, "auto", {}),
        ("s3a://bucket/lake", None, "auto", {"spark.hadoop.fs.s3a.path.style.access": "false"}),
        (
            "s3a://bucket/lake", "http://minio:9000", "path",
            {"spark.hadoop.fs.s3a.path.style.access": "true",
             "spark.hadoop.fs.s3a.endpoint": "http://minio:9000",
             "spark.hadoop.fs.s3a.connection.ssl.enabled": "false"},
        ),
        (
            "s3a://b/p", "https://eu2.contabostorage.com", "path",
            {"spark.hadoop.fs.s3a.path.style.access": "true",
             "spark.hadoop.fs.s3a.endpoint": "https://eu2.contabostorage.com",
             "spark.hadoop.fs.s3a.connection.ssl.enabled": "true"},
        ),
    ],
)  # fmt: skip
def test_lake_conf_never_carries_credentials(uri, endpoint, style, expected, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    conf = lake_conf(uri, endpoint_url=endpoint, addressing_style=style)
    assert conf == expected
    assert "very-secret-value" not in str(conf)


def test_package_jobs_is_reused_until_sources_change(tmp_path):
    src = tmp_path / "spark_jobs"
    (src / "silver").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "silver" / "job.py").write_text("X = 1\n")
    first = package_jobs(src, tmp_path / "out")
    assert package_jobs(src, tmp_path / "out") == first
    with zipfile.ZipFile(first) as archive:
        assert sorted(archive.namelist()) == ["spark_jobs/__init__.py", "spark_jobs/silver/job.py"]
    (src / "silver" / "job.py").write_text("X = 2\n")
    assert package_jobs(src, tmp_path / "out") != first


@pytest.mark.parametrize(
    ("output", "job"),
    [
        ("silver.stop_executions", "silver.stop_executions"),
        ("silver.stop_executions_v2", "silver.stop_executions"),
        ("silver.operations_test", "silver.operations"),
        ("silver.portfolio_snapshots", "silver.portfolio_snapshots"),
    ],
)
def test_resolve_output(output, job):
    assert resolve_output(output).name == job


@pytest.mark.parametrize(
    "output", ["silver.stop_execution", "bronze.events", "silver.stop_executions_V2", "gold.x"]
)
def test_resolve_output_rejects_unknown(output):
    with pytest.raises(UnknownDataset, match="unknown output"):
        resolve_output(output)
