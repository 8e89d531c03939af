"""Serve the lake over Spark Connect: a long-running, read-only SQL endpoint.

``spark-submit [--conf spark.connect.grpc.binding.*=...] spark_jobs/sql_endpoint.py
--lake-uri URI --state-file F [--refresh-seconds S] [--query-timeout S]``

The driver registers every lake dataset as a view under its dotted name
(``bronze.events``) over a table in the ``lake_files`` database, and each gold training
set as ``global_temp.gold__training_sets__<name>`` (``lake_sql`` rewrites
``gold.training_sets.<name>`` and ``robson_datalake.<layer>.<dataset>`` before sending:
the endpoint receives plans, not text, from other clients), starts the Spark
Connect service inside itself, then loops: every ``--refresh-seconds`` it registers new
datasets and refreshes the partitions and file listings of known ones (a run publishes
from another process, so the endpoint polls rather than being told), and every second
it cancels Spark jobs older than ``--query-timeout``. The state file (JSON) says the
endpoint is up and counts the refreshes. SIGTERM stops it cleanly.

Read-only is not this module's job alone: the local file system the endpoint uses
(``spark_jobs/java/ConfinedLocalFileSystem.java``, installed by ``lake_sql_server``)
refuses every write under the lake and every read outside it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and str(Path(p).resolve()) != _here]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession

from spark_jobs.common.config import lake_root
from spark_jobs.common.lake import LakeFS
from spark_jobs.sql import LAYERS, QUERY_SETTINGS, register_training_sets

#: The database holding the tables behind the public views.
FILES_DB = "lake_files"


def table_name(layer: str, name: str) -> str:
    """Return the hidden table behind the view ``<layer>.<name>``."""
    return f"{FILES_DB}.`{layer}__{name}`"


def refresh_lake_views(spark: SparkSession, lake_uri: str, known: set[str]) -> list[str]:
    """Register new datasets as views, refresh the partitions of known ones; return all.

    ``known`` holds the datasets registered so far and is updated. Gold training sets are
    registered again each time (:func:`spark_jobs.sql.register_training_sets`: global
    temporary views, which every client session sees), so new versions show up.
    """
    root = lake_root(lake_uri)
    fs = LakeFS(spark)
    for layer in LAYERS:
        names = fs.list_dirs(f"{root}/{layer}")
        for database in (FILES_DB, layer) if names else ():
            if not spark.catalog.databaseExists(database):
                spark.sql(f"CREATE DATABASE {database}")
        for name in names:
            dataset, table = f"{layer}.{name}", table_name(layer, name)
            try:
                if not spark.catalog.tableExists(f"{FILES_DB}.{layer}__{name}"):
                    location = f"{root}/{layer}/{name}".replace("'", "\\'")
                    spark.sql(f"DROP TABLE IF EXISTS {table}")
                    spark.sql(
                        f"CREATE TABLE {table} USING parquet "
                        f"OPTIONS (pathGlobFilter '*.parquet') LOCATION '{location}'"
                    )
                recover_partitions(spark, table)
                spark.sql(f"REFRESH TABLE {table}")
                spark.sql(f"CREATE OR REPLACE VIEW {layer}.`{name}` AS SELECT * FROM {table}")
                known.add(dataset)
            except Exception as error:  # an empty or foreign directory is not a dataset
                text = str(error).strip().splitlines()
                print(f"skipped {dataset}: {text[0] if text else error!r}", file=sys.stderr)
    try:
        training_sets = register_training_sets(spark, lake_uri)
    except Exception as error:  # keep the views of the last good refresh
        text = str(error).strip().splitlines()
        print(f"training sets not refreshed: {text[0] if text else error!r}", file=sys.stderr)
        training_sets = []
    return sorted(known) + training_sets


def recover_partitions(spark: SparkSession, table: str) -> None:
    """Register the partition directories of ``table`` that the catalog does not know yet.

    No catalog listing (``listColumns`` runs a Spark job, which would wait behind a long
    query for a free core): an unpartitioned table just refuses the command.
    """
    try:
        spark.sql(f"ALTER TABLE {table} RECOVER PARTITIONS")
    except Exception as error:
        if "NOT_A_PARTITIONED_TABLE" not in str(error):
            raise


class JobWatchdog:
    """Cancel Spark jobs that have been running longer than ``limit`` seconds."""

    def __init__(self, spark: SparkSession, limit: float) -> None:
        self.spark, self.limit = spark, limit
        self.first_seen: dict[int, float] = {}

    def tick(self, now: float) -> list[int]:
        """Cancel the jobs over the limit at ``now``; return their ids."""
        tracker = self.spark.sparkContext.statusTracker()
        active = set(tracker.getActiveJobsIds())
        self.first_seen = {j: t for j, t in self.first_seen.items() if j in active}
        cancelled = []
        for job in active:
            started = self.first_seen.setdefault(job, now)
            if self.limit and now - started > self.limit:
                self.spark.sparkContext._jsc.sc().cancelJob(
                    job, f"query ran longer than {self.limit:g} s (lake_sql_server limit)"
                )
                cancelled.append(job)
        return cancelled


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spark_jobs/sql_endpoint.py")
    parser.add_argument("--lake-uri", required=True)
    parser.add_argument("--state-file", required=True, help="JSON state, removed at exit")
    parser.add_argument("--refresh-seconds", type=float, default=10.0)
    parser.add_argument("--query-timeout", type=float, default=0.0, help="0: no limit")
    parser.add_argument(
        "--thrift", action="store_true", help="also serve JDBC/ODBC (Spark's Thrift server)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the lake until SIGTERM; return the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from spark_jobs.common.session import configure

    # The warehouse directory comes from lake_sql_server: the one place it may write.
    spark = SparkSession.builder.appName("robson lake_sql_server").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    configure(spark)
    for key, value in QUERY_SETTINGS.items():
        spark.conf.set(key, value)
    known: set[str] = set()
    tables = refresh_lake_views(spark, args.lake_uri, known)
    spark._jvm.org.apache.spark.sql.connect.service.SparkConnectService.start(
        spark.sparkContext._jsc.sc()
    )
    if args.thrift:
        # Sessions of the Thrift server share this driver's catalog (the same views).
        spark._jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithContext(
            spark._jsparkSession.sqlContext()
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    state = Path(args.state_file)
    refreshes = 1

    def publish() -> None:
        state_now = {
            "status": "up",
            "pid": os.getpid(),
            "refreshes": refreshes,
            "tables": tables,
            "app_id": spark.sparkContext.applicationId,
        }
        partial = state.with_suffix(".tmp")
        partial.write_text(json.dumps(state_now))
        partial.replace(state)

    publish()
    print(f"APP_ID={spark.sparkContext.applicationId}", file=sys.stderr, flush=True)
    print(f"serving {len(tables)} datasets: {', '.join(tables)}", file=sys.stderr, flush=True)
    watchdog = JobWatchdog(spark, args.query_timeout)

    def watch() -> None:
        # Its own thread: a refresh can wait behind a long query for a free core.
        while not stop.wait(1.0):
            watchdog.tick(time.monotonic())

    threading.Thread(target=watch, name="job-watchdog", daemon=True).start()
    try:
        while not stop.wait(args.refresh_seconds):
            tables = refresh_lake_views(spark, args.lake_uri, known)
            refreshes += 1
            publish()
    finally:
        state.unlink(missing_ok=True)
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
