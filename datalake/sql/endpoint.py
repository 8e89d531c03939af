"""Start the lake's SQL endpoint (Spark Connect) and find it: the Django side of
``spark_jobs/sql_endpoint.py``."""

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from datalake.conf import app_settings
from datalake.spark.runner import lake_uri, spark_dir, submit_config
from datalake.spark.submit import SubmitConfig, build_command, lake_conf

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
JAVA_SOURCES = ("java/ConfinedLocalFileSystem.java", "java/SettingsGuardInterceptor.java")
#: SQL settings every client session of the endpoint starts with (spark_jobs/sql.py).
SESSION_CONF = {
    "spark.sql.ansi.enabled": "false",
    "spark.sql.runSQLOnFiles": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


class EndpointError(Exception):
    """The endpoint cannot start as configured (the message says why)."""


def jobs_dir() -> Path:
    return Path(settings.BASE_DIR) / "spark_jobs"


def state_file() -> Path:
    """Return the file the running endpoint describes itself in (removed at its exit)."""
    return spark_dir() / "sql-server.json"


def read_state() -> dict | None:
    """Return the running endpoint's state, or None when none runs on this machine."""
    try:
        state = json.loads(state_file().read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def client_url() -> str | None:
    """Return the endpoint's ``sc://`` URL if one is reachable now, else None.

    ``SQL_SERVER_URL`` when set; otherwise the endpoint ``lake_sql_server`` started on
    this machine, if its state file says it is up.
    """
    url = app_settings.SQL_SERVER_URL
    if not url:
        if read_state() is None:
            return None
        # "localhost": the Connect client sends a token over a local channel only then.
        url = f"sc://localhost:{app_settings.SQL_SERVER_PORT}"
    parts = urlsplit(url.replace("sc://", "http://", 1))
    try:
        with socket.create_connection((parts.hostname, parts.port or 15002), timeout=1.0):
            return url
    except OSError:
        return None


def confined_fs_jar(work: Path) -> Path:
    """Return the jar of the endpoint's confined local file system, built if needed.

    Built with the JDK's ``javac``/``jar`` against pyspark's own Hadoop client, once per
    version of the source; the jar name carries the source's hash.
    """
    sources = [jobs_dir() / name for name in JAVA_SOURCES]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    jar = work / f"robson-confined-fs-{digest}.jar"
    if jar.exists():
        return jar
    java_home = os.environ.get("JAVA_HOME", "")
    tools = [shutil.which(t, path=f"{java_home}/bin" if java_home else None) or shutil.which(t)
             for t in ("javac", "jar")]  # fmt: skip
    if not all(tools):
        raise EndpointError(
            "the SQL endpoint needs a JDK (javac, jar) to build its read-only file system; "
            f"install one or put a built {jar.name} in {work}"
        )
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise EndpointError("pyspark is not installed")
    jars = Path(spec.origin).parent / "jars"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as build:
        subprocess.run(
            [tools[0], "-nowarn", "-d", build, "-cp", f"{jars}/*", *map(str, sources)],
            check=True, capture_output=True,
        )  # fmt: skip
        partial = Path(build) / jar.name
        subprocess.run([tools[1], "cf", str(partial), "-C", build, "robson"], check=True)
        partial.replace(jar)
    return jar


def server_conf(config: SubmitConfig, jar: Path, warehouse: Path, uri: str) -> dict[str, str]:
    """Return the Spark settings of the endpoint: binding, resources, read-only lake."""
    host = app_settings.SQL_SERVER_HOST
    local_root = str(Path(uri).resolve())
    conf = {
        **SESSION_CONF,
        **lake_conf(
            uri,
            endpoint_url=app_settings.S3_ENDPOINT_URL,
            addressing_style=app_settings.S3_ADDRESSING_STYLE,
        ),
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(app_settings.SQL_SERVER_PORT),
        "spark.sql.warehouse.dir": str(warehouse),
        "spark.driver.extraClassPath": str(jar),
        "spark.jars": str(jar),
        "spark.hadoop.fs.file.impl": "robson.ConfinedLocalFileSystem",
        # Clients may change spark.sql.* settings only: others reach Hadoop's settings.
        "spark.connect.grpc.interceptor.classes": "robson.SettingsGuardInterceptor",
        # The lake, and the jar Spark serves to executors.
        "spark.hadoop.robson.fs.readable": ",".join(
            [str(jar), *([] if uri.startswith("s3a://") else [local_root])]
        ),
        # Spark's scratch space (shuffle, spills) is written with java.io, not through
        # this file system: only the endpoint's own directory (its warehouse) is writable.
        "spark.hadoop.robson.fs.writable": str(warehouse.parent),
        "spark.ui.enabled": "false",
    }
    if app_settings.SQL_SERVER_THRIFT_PORT:
        scratch = warehouse.parent / "hive"
        conf.update({
            # No authentication in the Thrift server: loopback only, always.
            "spark.hadoop.hive.server2.thrift.bind.host": "127.0.0.1",
            "spark.hadoop.hive.server2.thrift.port": str(app_settings.SQL_SERVER_THRIFT_PORT),
            "spark.hadoop.hive.exec.scratchdir": str(scratch / "scratch"),
            "spark.hadoop.hive.exec.local.scratchdir": str(scratch / "local"),
            "spark.hadoop.hive.downloaded.resources.dir": str(scratch / "resources"),
        })  # fmt: skip
    if config.master.startswith("local"):
        conf["spark.master"] = f"local[{app_settings.SQL_SERVER_CORES}]"
    else:
        conf["spark.cores.max"] = str(app_settings.SQL_SERVER_CORES)
    return conf


def server_command() -> tuple[list[str], dict[str, str]]:
    """Return the spark-submit argv and environment that start the endpoint."""
    config = submit_config()
    config = SubmitConfig(
        spark_submit=config.spark_submit,
        master=config.master,
        deploy_mode="client",  # the driver is the server: it runs here
        driver_memory=app_settings.SQL_SERVER_MEMORY,
        executor_memory=config.executor_memory,
        conf=dict(config.conf),
    )
    work = spark_dir() / "sql-server"
    work.mkdir(parents=True, exist_ok=True)
    uri = lake_uri()
    conf = server_conf(config, confined_fs_jar(spark_dir()), work / "warehouse", uri)
    master = conf.pop("spark.master", config.master)
    config = SubmitConfig(**{**config.__dict__, "master": master})
    command = build_command(
        config,
        main=str(jobs_dir() / "sql_endpoint.py"),
        args=["--lake-uri", uri, "--state-file", str(state_file()),
              "--refresh-seconds", str(app_settings.SQL_SERVER_REFRESH_SECONDS),
              "--query-timeout", str(app_settings.SQL_SERVER_QUERY_TIMEOUT),
              *(["--thrift"] if app_settings.SQL_SERVER_THRIFT_PORT else [])],
        app_name="robson-lake_sql_server",
        extra_conf=conf,
    )  # fmt: skip
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    if app_settings.SQL_SERVER_TOKEN:
        # Given as an environment variable, not on the command line that `ps` shows.
        env["SPARK_CONNECT_AUTHENTICATE_TOKEN"] = app_settings.SQL_SERVER_TOKEN
    return command, env


def prepare_start() -> None:
    """Raise :class:`EndpointError` if the endpoint cannot start as configured or already
    runs here; clear a stale state file."""
    host = app_settings.SQL_SERVER_HOST
    if host not in LOOPBACK and not app_settings.SQL_SERVER_TOKEN:
        raise EndpointError(
            f"SQL_SERVER_HOST={host} listens beyond this machine: set SQL_SERVER_TOKEN"
        )
    if not 0 < app_settings.SQL_SERVER_PORT < 65536:
        raise EndpointError(f"SQL_SERVER_PORT={app_settings.SQL_SERVER_PORT} is not a port")
    state = read_state()
    if state is not None:
        raise EndpointError(f"lake_sql_server already runs here (pid {state['pid']})")
    state_file().unlink(missing_ok=True)
