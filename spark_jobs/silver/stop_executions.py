"""silver.stop_executions: one row per stop execution, rebuilt by replaying bronze.events.

All events sharing an ``execution_token`` are one execution (an event without a token
belongs to none and is left out). Bronze duplicates (the same ``event_id`` twice) count
once; events are replayed in (occurred_at, event_seq) order, so
an event recorded late (a higher event_seq) still takes its place by occurrence time.

Columns (besides the trigger event's operation_id, symbol, side, stop/trigger price,
quantity and source):

- ``execution_id``: ``uuid5(EXECUTION_NAMESPACE, execution_token)``, stable across rebuilds;
- ``status``: after the latest state-changing event (see :data:`STATUS_AFTER`);
- ``triggered_at`` / ``submitted_at``: first STOP_TRIGGERED / EXECUTION_SUBMITTED;
  ``executed_at``: last EXECUTED; ``failed_at``: last FAILED;
- ``exchange_order_id``, ``fill_price``, ``slippage_pct``, ``error_message``: the last
  non-null value; ``slippage_breach``: a SLIPPAGE_BREACH event exists;
- ``retry_count``: the highest; ``event_count``: distinct events; ``first_event_seq`` /
  ``last_event_seq``: lowest / highest event_seq; ``source_event_ids``: in replay order;
- ``strategy_id``: ``$.strategy_id`` of the trigger event's payload (null if absent);
- ``created_at``: when this row was built (for freshness checks).

Partitions: ``client_id`` / ``date`` = UTC date of the execution's trigger (its first
event when the trigger is missing), so an execution that spans midnight lands whole in the
partition of the day it was triggered.

Scope of a run (``--dates``): executions last minutes, never more than one midnight, so
bronze is read for [min(dates) - 2 days, max(dates) + 1 day]. Every execution with an
event on one of the dates is affected; its partition is rewritten with all the
executions triggered that day. The extra day before makes sure an execution triggered
before the window never shows up half-read (without its trigger) as if it belonged in it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from spark_jobs.common.bronze import BRONZE_EVENTS
from spark_jobs.common.checks import Check, CountCheck, RowCheck, UniqueCheck, not_null
from spark_jobs.common.config import JobConfig
from spark_jobs.common.datasets import MONEY, SLIPPAGE, Layout, read_dataset
from spark_jobs.common.output import Output, write_checked
from spark_jobs.common.report import Report

DATASET = "silver.stop_executions"

#: ``execution_id = str(uuid5(EXECUTION_NAMESPACE, execution_token))``, computed in Spark
#: SQL (no Python UDF) and equal to Python's ``uuid.uuid5`` (the tests check it).
EXECUTION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "robson:silver.stop_executions")

TRIGGERED = "STOP_TRIGGERED"
SUBMITTED = "EXECUTION_SUBMITTED"
EXECUTED = "EXECUTED"
FAILED = "FAILED"
SLIPPAGE_BREACH = "SLIPPAGE_BREACH"

#: Status after each state-changing event; SLIPPAGE_BREACH changes nothing.
STATUS_AFTER = {
    TRIGGERED: "PENDING",
    SUBMITTED: "SUBMITTED",
    EXECUTED: "EXECUTED",
    FAILED: "FAILED",
    "BLOCKED": "BLOCKED",
    "KILL_SWITCH": "BLOCKED",
    "CIRCUIT_BREAKER": "BLOCKED",
    "STALE_PRICE": "BLOCKED",
}
STATUSES = ("PENDING", "SUBMITTED", "EXECUTED", "FAILED", "BLOCKED")
MAX_ABS_SLIPPAGE = 50

SCHEMA = StructType(
    [
        StructField("execution_id", StringType()),
        StructField("execution_token", StringType()),
        StructField("operation_id", LongType()),
        StructField("strategy_id", LongType()),
        StructField("symbol", StringType()),
        StructField("side", StringType()),
        StructField("status", StringType()),
        StructField("stop_price", MONEY),
        StructField("trigger_price", MONEY),
        StructField("quantity", MONEY),
        StructField("triggered_at", TimestampType()),
        StructField("submitted_at", TimestampType()),
        StructField("executed_at", TimestampType()),
        StructField("failed_at", TimestampType()),
        StructField("exchange_order_id", StringType()),
        StructField("fill_price", MONEY),
        StructField("slippage_pct", SLIPPAGE),
        StructField("slippage_breach", BooleanType()),
        StructField("retry_count", IntegerType()),
        StructField("error_message", StringType()),
        StructField("source", StringType()),
        StructField("event_count", IntegerType()),
        StructField("first_event_seq", LongType()),
        StructField("last_event_seq", LongType()),
        StructField("source_event_ids", ArrayType(StringType())),
        StructField("created_at", TimestampType()),
        StructField("client_id", LongType()),
        StructField("date", DateType()),
    ]
)
LAYOUT = Layout(DATASET, SCHEMA, ("client_id", "date"))
OUTPUT = Output(DATASET, ("client_id", "date"), sort_by=("triggered_at", "execution_token"))


# --- transform ---------------------------------------------------------------------------


def uuid5_column(name: Column, namespace: uuid.UUID = EXECUTION_NAMESPACE) -> Column:
    """Return ``str(uuid.uuid5(namespace, name))`` as a Spark expression (RFC 4122)."""
    digest = F.sha1(F.concat(F.unhex(F.lit(namespace.hex)), F.encode(name, "UTF-8")))
    # Version nibble (13th hex digit) = 5; variant bits of the 17th digit = 10xx.
    variant = F.lower(F.hex(F.conv(F.substring(digest, 17, 1), 16, 10).cast("int") % 4 + 8))
    bits = F.overlay(F.overlay(F.substring(digest, 1, 32), F.lit("5"), 13, 1), variant, 17, 1)
    return F.regexp_replace(bits, r"^(.{8})(.{4})(.{4})(.{4})(.{12})$", "$1-$2-$3-$4-$5")


def dedupe_events(events: DataFrame) -> DataFrame:
    """Return ``events`` with one row per ``event_id`` (bronze may hold a row twice).

    Copies of an event share its execution_token: clustering by the token first lets the
    replay's groupBy reuse this one shuffle.
    """
    first = Window.partitionBy("execution_token", "event_id").orderBy("event_seq", "occurred_at")
    return (
        events.repartition("execution_token")
        .withColumn("_copy", F.row_number().over(first))
        .filter("_copy = 1")
        .drop("_copy")
    )


def status_after(event_type: Column) -> Column:
    """Return the status an event leaves its execution in (null: no change)."""
    cases = [(event_type == kind, F.lit(status)) for kind, status in STATUS_AFTER.items()]
    return reduce(lambda acc, case: acc.when(*case), cases[1:], F.when(*cases[0]))


def build_stop_executions(events: DataFrame, built_at: datetime) -> DataFrame:
    """Replay bronze ``events`` into one row per execution (schema :data:`SCHEMA`).

    ``built_at`` becomes ``created_at`` (when silver was built, for freshness checks).
    """
    events = dedupe_events(events.filter(F.col("execution_token").isNotNull()))
    events = events.withColumn("_state", status_after(F.col("event_type")))
    order = F.struct("occurred_at", "event_seq")
    is_trigger = F.col("event_type") == TRIGGERED

    def first(column: str, where: Column | None = None) -> Column:
        return F.min_by(column, order if where is None else F.when(where, order))

    def last(column: str, where: Column | None = None) -> Column:
        return F.max_by(column, order if where is None else F.when(where, order))

    def of_trigger(column: str) -> Column:
        return F.coalesce(first(column, is_trigger), first(column))

    def at(kind: str, pick: str = "min") -> Column:
        times = F.when(F.col("event_type") == kind, F.col("occurred_at"))
        return F.min(times) if pick == "min" else F.max(times)

    replayed = events.groupBy("execution_token").agg(
        of_trigger("operation_id").alias("operation_id"),
        of_trigger("client_id").alias("client_id"),
        of_trigger("symbol").alias("symbol"),
        of_trigger("side").alias("side"),
        of_trigger("stop_price").alias("stop_price"),
        of_trigger("trigger_price").alias("trigger_price"),
        of_trigger("quantity").alias("quantity"),
        of_trigger("source").alias("source"),
        of_trigger("payload_json").alias("_payload"),
        last("_state", F.col("_state").isNotNull()).alias("status"),
        at(TRIGGERED).alias("triggered_at"),
        at(SUBMITTED).alias("submitted_at"),
        at(EXECUTED, "max").alias("executed_at"),
        at(FAILED, "max").alias("failed_at"),
        F.min("occurred_at").alias("_first_at"),
        last("exchange_order_id", F.col("exchange_order_id").isNotNull()).alias(
            "exchange_order_id"
        ),
        last("fill_price", F.col("fill_price").isNotNull()).alias("fill_price"),
        last("slippage_pct", F.col("slippage_pct").isNotNull()).alias("slippage_pct"),
        F.bool_or(F.col("event_type") == SLIPPAGE_BREACH).alias("slippage_breach"),
        F.coalesce(F.max("retry_count"), F.lit(0)).alias("retry_count"),
        last("error_message", F.col("error_message").isNotNull()).alias("error_message"),
        F.count(F.lit(1)).alias("event_count"),
        F.min("event_seq").alias("first_event_seq"),
        F.max("event_seq").alias("last_event_seq"),
        F.array_sort(F.collect_list(F.struct("occurred_at", "event_seq", "event_id"))).alias(
            "_replay"
        ),
    )
    return replayed.select(
        uuid5_column(F.col("execution_token")).alias("execution_id"),
        "execution_token",
        "operation_id",
        F.get_json_object("_payload", "$.strategy_id").cast(LongType()).alias("strategy_id"),
        "symbol",
        "side",
        "status",
        "stop_price",
        "trigger_price",
        "quantity",
        "triggered_at",
        "submitted_at",
        "executed_at",
        "failed_at",
        "exchange_order_id",
        "fill_price",
        "slippage_pct",
        "slippage_breach",
        F.col("retry_count").cast(IntegerType()).alias("retry_count"),
        "error_message",
        "source",
        F.col("event_count").cast(IntegerType()).alias("event_count"),
        "first_event_seq",
        "last_event_seq",
        F.transform("_replay", lambda e: e["event_id"]).alias("source_event_ids"),
        F.lit(built_at).cast(TimestampType()).alias("created_at"),
        "client_id",
        F.to_date(F.coalesce("triggered_at", "_first_at")).alias("date"),
    )


def affected_by_dates(executions: DataFrame, events: DataFrame, dates: Sequence[date]) -> DataFrame:
    """Return the executions of every partition touched by an event on one of ``dates``.

    Touched partitions are those of executions with any event on those dates (UTC); the
    result holds *all* executions of those partitions, so they can be rewritten whole.
    """
    touched = (
        events.filter(F.to_date("occurred_at").isin(dates)).select("execution_token").distinct()
    )
    touched_executions = executions.join(touched, "execution_token", "left_semi")
    partitions = touched_executions.select("client_id", "date").distinct()
    return executions.join(partitions, ["client_id", "date"], "left_semi")


def expected_executions(events: DataFrame, executions: DataFrame) -> int:
    """Return how many distinct tokens the input events hold for ``executions``' partitions.

    Counted from the events alone (first event's client and UTC date), as the bronze side
    of the row-count reconciliation.
    """
    order = F.struct("occurred_at", "event_seq")
    tokens = (
        events.filter(F.col("execution_token").isNotNull())
        .groupBy("execution_token")
        .agg(
            F.min_by("client_id", order).alias("client_id"),
            F.to_date(F.min("occurred_at")).alias("date"),
        )
    )
    partitions = executions.select("client_id", "date").distinct()
    return tokens.join(partitions, ["client_id", "date"], "left_semi").count()


def quality_checks(expected_rows: int) -> list[Check]:
    """Return the contract of silver.stop_executions (SPEC §4) plus reconciliation."""
    slippage = F.abs(F.col("slippage_pct"))
    return [
        not_null("execution_id"),
        not_null("operation_id"),
        not_null("status"),
        RowCheck("status_known", ~F.col("status").isin(*STATUSES), "unknown statuses"),
        RowCheck(
            "slippage_within_50_pct",
            slippage > MAX_ABS_SLIPPAGE,
            f"rows beyond ±{MAX_ABS_SLIPPAGE}%",
            stat=F.max(slippage),
            stat_label="max |slippage|",
        ),
        RowCheck(
            "executed_has_fill_price",
            (F.col("status") == "EXECUTED") & F.col("fill_price").isNull(),
            "EXECUTED rows without fill_price",
        ),
        UniqueCheck("execution_id_unique", ("execution_id",)),
        CountCheck("row_count_matches_bronze", expected_rows, "distinct bronze execution_tokens"),
        RowCheck(
            "trigger_event_present",
            F.col("triggered_at").isNull(),
            "executions without a STOP_TRIGGERED event",
            critical=False,
        ),
        RowCheck(
            "executed_has_slippage",
            (F.col("status") == "EXECUTED") & F.col("slippage_pct").isNull(),
            "EXECUTED rows without slippage_pct",
            critical=False,
        ),
    ]


# --- entry point -------------------------------------------------------------------------


def run(spark: SparkSession, config: JobConfig, report: Report) -> None:
    """Rebuild the partitions of silver.stop_executions that the run's scope covers."""
    first = last = None
    if config.mode == "dates":
        first, last = config.dates[0] - timedelta(days=2), config.dates[-1] + timedelta(days=1)
    elif config.mode == "range":
        assert config.start_date is not None
        assert config.end_date is not None
        first, last = config.start_date - timedelta(days=1), config.end_date + timedelta(days=1)
    events = read_dataset(spark, config.lake_uri, BRONZE_EVENTS, first, last)
    report.inputs["bronze.events"] = events.count()

    executions = build_stop_executions(events, built_at=datetime.now(UTC))
    if config.mode == "dates":
        executions = affected_by_dates(executions, events, list(config.dates))
    elif config.mode == "range":
        executions = executions.filter(F.col("date").between(config.start_date, config.end_date))
    executions = executions.persist()
    try:
        checks = quality_checks(expected_executions(dedupe_events(events), executions))
        output = Output(config.output or DATASET, OUTPUT.partition_by, OUTPUT.sort_by)
        write_checked(spark, config, executions, output, checks, report)
    finally:
        executions.unpersist()
