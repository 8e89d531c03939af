"""The SQL endpoint (lake_sql_server): one server for the whole module, on a tiny lake.

Runs once in CI: the database does not matter here, so the module runs only in the
PostgreSQL pass of the suite.
"""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from datalake.models import JobRun

pytestmark = [
    pytest.mark.spark,
    pytest.mark.slow,
    pytest.mark.django_db,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="runs once in CI, in the PostgreSQL pass (the endpoint does not use the database)",
    ),
    pytest.mark.skipif(shutil.which("javac") is None, reason="the endpoint needs a JDK (javac)"),
]
grpc = pytest.importorskip("grpc", reason="the Spark Connect client needs pyspark[connect]")

TOKEN = "endpoint-test-token"
START_SECONDS = 300
#: The endpoint's job time limit in these tests: far above any query of the tiny lake.
QUERY_LIMIT = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


EXECUTIONS = pa.schema([
    ("execution_id", pa.string()), ("symbol", pa.string()), ("status", pa.string()),
    ("fill_price", pa.decimal128(18, 8)), ("slippage_pct", pa.decimal128(18, 8)),
    ("created_at", pa.timestamp("us", tz="UTC")),
])  # fmt: skip


def write_partition(
    root: Path, dataset: str, parts: dict, rows: list[dict], schema: pa.Schema | None = None
) -> None:
    directory = root.joinpath(dataset, *(f"{k}={v}" for k, v in parts.items()))
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), directory / "part-0.parquet")


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def build_lake(root: Path) -> None:
    """Write bronze.events (partitioned by date) and silver.stop_executions."""
    for day, n in (("2024-12-26", 2), ("2024-12-27", 3)):
        write_partition(root, "bronze/events", {"date": day}, [
            {"event_id": f"{day}-{i}", "occurred_at": ts(f"{day}T10:00:0{i}"), "client_id": 1}
            for i in range(n)
        ])  # fmt: skip
    for client, status, slippage in ((1, "EXECUTED", "0.10"), (1, "FAILED", None),
                                     (2, "EXECUTED", "0.30")):  # fmt: skip
        parts = {"client_id": client, "date": "2024-12-27"}
        write_partition(root, "silver/stop_executions", parts, [
            {"execution_id": f"{client}-{status}", "symbol": "BTCUSDC", "status": status,
             "fill_price": Decimal("1.5") if status == "EXECUTED" else None,
             "slippage_pct": Decimal(slippage) if slippage else None,
             "created_at": ts("2025-01-02T03:04:05")}
        ], EXECUTIONS)  # fmt: skip
    # gold.training_sets.stop_outcome: two versions, the seed's query reads v1.0.0 only.
    for version, split, flags in (
        ("v1.0.0", "train", (True, True, False)),
        ("v1.0.0", "test", (True,)),
        ("v1.1.0", "train", (False,)),
    ):
        write_partition(root, f"gold/training_sets/stop_outcome/{version}/{split}",
                        {"date": "2024-12-26"}, [
            {"sample_id": f"{version}-{split}-{i}", "label": {"execution_success": flag}}
            for i, flag in enumerate(flags)
        ])  # fmt: skip


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}  # fmt: skip


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """Start lake_sql_server on a tiny lake; stop it with SIGTERM at the end."""
    base = tmp_path_factory.mktemp("endpoint")
    lake, work = base / "lake", base / "work"
    build_lake(lake)
    port, thrift_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATALAKE_URI": str(lake), "DATALAKE_WORK_DIR": str(work),
        "SQL_SERVER_PORT": str(port), "SQL_SERVER_TOKEN": TOKEN,
        "SQL_SERVER_CORES": "1", "SQL_SERVER_MEMORY": "1g",
        "SQL_SERVER_REFRESH_SECONDS": "1", "SQL_SERVER_QUERY_TIMEOUT": str(QUERY_LIMIT),
        "SQL_SERVER_THRIFT_PORT": str(thrift_port),
        "DATABASE_URL": f"sqlite:///{base / 'db.sqlite3'}",
    }  # fmt: skip
    log = (base / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "lake_sql_server"], cwd=django_settings.BASE_DIR,
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    state = work / "spark" / "sql-server.json"
    deadline = time.monotonic() + START_SECONDS
    while not state.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("lake_sql_server did not start:\n" + (base / "server.log").read_text())
        time.sleep(0.5)
    url = f"sc://localhost:{port}"
    yield {"lake": lake, "work": work, "port": port, "url": url, "state": state,
           "thrift_port": thrift_port}  # fmt: skip
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=120) in (0, -signal.SIGTERM, 143)
    assert not state.exists()  # a clean stop: the next start does not see a stale server
    log.close()


@pytest.fixture(scope="module")
def client(endpoint):
    from pyspark.sql.connect.session import SparkSession

    session = SparkSession.builder.remote(f"{endpoint['url']}/;token={TOKEN}").getOrCreate()
    yield session
    session.stop()


@pytest.fixture
def lake_settings(settings, endpoint, tmp_path):
    settings.DATALAKE_URI = str(endpoint["lake"])
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    settings.DATALAKE_SQL_SERVER_URL = endpoint["url"]
    settings.DATALAKE_SQL_SERVER_TOKEN = TOKEN
    settings.DATALAKE_SPARK_MASTER = "local[1]"
    settings.DATALAKE_SPARK_DRIVER_MEMORY = "1g"
    settings.DATALAKE_SPARK_CLASS_ARCHIVE_DIR = "off"
    return settings


def wait_for_refreshes(state: Path, count: int) -> None:
    """Wait until the endpoint has finished ``count`` more refreshes."""
    target = json.loads(state.read_text())["refreshes"] + count
    deadline = time.monotonic() + 120
    while json.loads(state.read_text())["refreshes"] < target:
        assert time.monotonic() < deadline, "the endpoint stopped refreshing"
        time.sleep(0.2)


def test_seed_queries_give_the_same_results_as_the_one_off_path(lake_settings, endpoint, tmp_path):
    # One file, one spark-submit for the one-off path: the seed's sample and monitoring
    # queries, its gold monitoring query, and its catalog's three-part names.
    queries = tmp_path / "seed.sql"
    queries.write_text(
        (Path(django_settings.BASE_DIR) / "datalake/sql/seed_samples.sql").read_text()
        + "\n" + (Path(django_settings.BASE_DIR) / "datalake/sql/gold_samples.sql").read_text()
        + "\n-- Three-part names\nSELECT COUNT(*) AS n FROM robson_datalake.bronze.events "
        "WHERE date='2024-12-27';\n"
    )  # fmt: skip
    through_endpoint, err = io.StringIO(), io.StringIO()
    call_command("lake_sql", "-f", str(queries), stdout=through_endpoint, stderr=err)
    assert err.getvalue() == ""
    run = JobRun.objects.get(job_name="lake_sql")
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.parameters["endpoint"] == endpoint["url"]

    lake_settings.DATALAKE_SQL_SERVER_URL = f"sc://localhost:{free_port()}"  # nobody there
    one_off = io.StringIO()
    call_command("lake_sql", "-f", str(queries), stdout=one_off, stderr=err)
    assert "one-off spark-submit" in err.getvalue()

    a, b = (out.getvalue().split("\n\n") for out in (through_endpoint, one_off))
    assert a[:4] == b[:4]  # success rate, slippage, rows per date, null percentage
    assert a[0].splitlines()[0] == "-- Success rate by client"
    assert a[0].endswith("(2 rows)")
    # The freshness queries subtract CURRENT_TIMESTAMP: same shape, not the same value.
    assert [x.splitlines()[:2] for x in a[4:6]] == [x.splitlines()[:2] for x in b[4:6]]
    assert a[6:8] == b[6:8]  # the gold label distribution, the three-part names
    assert a[6].splitlines()[0] == "-- Gold layer: Label distribution"
    assert a[6].endswith("(2 rows)")  # v1.0.0 only: 3 successes, 1 failure
    assert a[7].splitlines()[-2:] == ["3", "(1 row)"]


def test_training_sets_are_served_to_any_client(endpoint, client):
    view = "global_temp.gold__training_sets__stop_outcome"
    rows = client.sql(f"SELECT version, split, COUNT(*) FROM {view} GROUP BY 1, 2").collect()
    assert sorted(tuple(r) for r in rows) == [
        ("v1.0.0", "test", 1), ("v1.0.0", "train", 3), ("v1.1.0", "train", 1)
    ]  # fmt: skip


def test_a_partition_published_after_the_start_is_visible_to_the_next_query(endpoint, client):
    query = "SELECT COUNT(*) FROM bronze.events WHERE date = '2024-12-28'"
    assert client.sql(query).collect()[0][0] == 0
    write_partition(endpoint["lake"], "bronze/events", {"date": "2024-12-28"}, [
        {"event_id": "new", "occurred_at": ts("2024-12-28T00:00:01"), "client_id": 3}
    ])  # fmt: skip
    wait_for_refreshes(endpoint["state"], 2)
    assert client.sql(query).collect()[0][0] == 1
    partitions = client.sql("SHOW PARTITIONS lake_files.bronze__events").collect()
    assert "date=2024-12-28" in [row[0] for row in partitions]


def test_the_lake_is_read_only_for_any_client(endpoint, client):
    lake = endpoint["lake"]
    before = snapshot(lake)
    for statement in [
        "INSERT INTO bronze.events SELECT * FROM bronze.events",
        "INSERT INTO lake_files.bronze__events SELECT * FROM bronze.events",
        f"CREATE TABLE bronze.copy USING parquet LOCATION '{lake}/bronze/copy' "
        "AS SELECT * FROM bronze.events",
        f"INSERT OVERWRITE DIRECTORY '{lake}/bronze/events' USING parquet SELECT 1 AS x",
    ]:
        with pytest.raises(Exception):  # noqa: B017 - Spark's error class varies
            client.sql(statement).collect()
    for mode in ("append", "overwrite"):
        with pytest.raises(Exception, match="read-only"):
            client.range(3).write.mode(mode).parquet(f"{lake}/bronze/events")
    # Dropping the table behind a view drops catalog metadata only; the next refresh
    # brings it back.
    client.sql("DROP TABLE lake_files.bronze__events").collect()
    assert snapshot(lake) == before
    wait_for_refreshes(endpoint["state"], 2)
    assert client.sql("SELECT COUNT(*) FROM bronze.events").collect()[0][0] >= 5


def test_a_client_cannot_swap_the_file_system_back(endpoint, client):
    for key in ("fs.file.impl", "spark.hadoop.fs.file.impl", "fs.file.impl.disable.cache"):
        with pytest.raises(Exception, match="is not allowed"):
            client.conf.set(key, "org.apache.hadoop.fs.LocalFileSystem")
    for statement in ("SET fs.file.impl.disable.cache=true",
                      "SET/**/fs.file.impl.disable.cache=true",
                      "set\n  `fs.file.impl.disable.cache`=true"):  # fmt: skip
        with pytest.raises(Exception, match="is not allowed"):
            client.sql(statement).collect()
    client.conf.set("spark.sql.shuffle.partitions", "3")  # the session's SQL settings stay
    before = snapshot(endpoint["lake"])
    with pytest.raises(Exception, match="read-only"):
        client.range(3).write.mode("append").parquet(f"{endpoint['lake']}/bronze/events")
    assert snapshot(endpoint["lake"]) == before


def test_a_client_cannot_read_outside_the_lake(endpoint, client, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with pytest.raises(Exception, match="outside the lake"):
        client.read.csv(str(secret)).collect()
    with pytest.raises(Exception):  # noqa: B017
        client.sql(f"SELECT * FROM csv.`{secret}`").collect()


def test_a_client_without_the_token_is_refused(endpoint):
    from pyspark.sql.connect.session import SparkSession

    os.environ.pop("SPARK_CONNECT_AUTHENTICATE_TOKEN", None)
    session = SparkSession.builder.remote(endpoint["url"]).create()
    with pytest.raises(Exception):  # noqa: B017
        session.sql("SELECT 1").collect()


def test_bi_tools_query_over_jdbc_with_beeline(endpoint):
    beeline = shutil.which("beeline")
    if beeline is None:
        pytest.skip("beeline (shipped with pyspark) is not on PATH")
    before = snapshot(endpoint["lake"])
    url = f"jdbc:hive2://127.0.0.1:{endpoint['thrift_port']}/"
    queries = (
        "SELECT date, COUNT(*) AS n FROM bronze.events WHERE date < '2024-12-28' "
        "GROUP BY date ORDER BY date; INSERT INTO lake_files.bronze__events "
        "SELECT * FROM bronze.events"
    )
    result = subprocess.run(
        [beeline, "-u", url, "-n", "analyst", "--silent=true", "--outputformat=csv2",
         "-e", queries],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.endswith("date,n"))
    assert lines[header + 1 : header + 3] == ["2024-12-26,2", "2024-12-27,3"]
    assert "the lake is read-only" in result.stdout + result.stderr
    assert snapshot(endpoint["lake"]) == before


def test_a_query_over_the_time_limit_is_cancelled(endpoint, client):
    started = time.monotonic()
    with pytest.raises(Exception, match="longer than 30 s"):
        client.sql("SELECT SUM(id % 7) FROM range(1000000000000)").collect()
    assert QUERY_LIMIT <= time.monotonic() - started < QUERY_LIMIT + 60
    assert client.sql("SELECT COUNT(*) FROM bronze.events").collect()[0][0] >= 5  # still up
