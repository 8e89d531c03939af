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
  ``executed_at``: last EXECUTED; ``failed_at``: last FAILED; ``resolved_at``: the last
  state-changing event (when the execution reached its status);
- ``exchange_order_id``, ``fill_price``, ``slippage_pct``, ``error_message``: the last
  non-null value; ``slippage_breach``: a SLIPPAGE_BREACH event exists;
- ``retry_count``: the highest; ``event_count``: distinct events; ``first_event_seq`` /
  ``last_event_seq``: lowest / highest event_seq; ``source_event_ids``: in replay order;
- ``strategy_id``: ``$.strategy_id`` of the trigger event's payload (null if absent, or
  if it is not a whole number: ``"abc"`` is nulled and counted by the warning check
  ``untypeable_values``, with an example, instead of failing the run under ANSI mode);
- ``created_at``: when this row was built (for freshness checks).

Partitions: ``client_id`` / ``date`` = UTC date of the execution's trigger (its first
event when the trigger is missing), so an execution that spans midnight lands whole in the
partition of the day it was triggered.

Scope of a run (``--dates``): executions last minutes, never more than one midnight, so
bronze is read for [min(dates) - 2 days, max(dates) + 2 days]. Every execution with an
event on one of the dates is affected; its partition is rewritten with all the
executions triggered that day. The partition it was published in before is rewritten
too: an execution whose trigger arrives late (in a later export than its other events)
moves to the day before, and must not stay behind in its old partition. The extra day on
each side makes sure every execution of a rewritten partition is read whole.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import reduce

from pyspark.sql import Column, DataFrame, Observation, SparkSession
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
from spark_jobs.common.checks import (
    Check,
    CountCheck,
    RowCheck,
    UniqueCheck,
    UntypeableCheck,
    not_null,
    observe_untypeable,
)
from spark_jobs.common.config import JobConfig
from spark_jobs.common.datasets import (
    MONEY,
    SLIPPAGE,
    Layout,
    date_between,
    in_partitions,
    read_dataset,
    read_files,
    read_partitions,
)
from spark_jobs.common.decimals import typed
from spark_jobs.common.lake import LakeFS, dataset_uri, partition_path
from spark_jobs.common.output import Output, write_checked
from spark_jobs.common.report import Report
from spark_jobs.common.session import shuffle_partitions

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
        StructField("resolved_at", TimestampType()),
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
PARTITIONS = ("client_id", "date")
LAYOUT = Layout(DATASET, SCHEMA, PARTITIONS)
OUTPUT = Output(DATASET, PARTITIONS, sort_by=("triggered_at", "execution_token"))


# --- transform ---------------------------------------------------------------------------


def uuid5_column(name: Column, namespace: uuid.UUID = EXECUTION_NAMESPACE) -> Column:
    """Return ``str(uuid.uuid5(namespace, name))`` as a Spark expression (RFC 4122)."""
    digest = F.sha1(F.concat(F.unhex(F.lit(namespace.hex)), F.encode(name, "UTF-8")))
    # Version nibble (13th hex digit) = 5; variant bits of the 17th digit = 10xx.
    variant = F.lower(F.hex(F.conv(F.substring(digest, 17, 1), 16, 10).cast("int") % 4 + 8))
    bits = F.overlay(F.overlay(F.substring(digest, 1, 32), F.lit("5"), 13, 1), variant, 17, 1)
    return F.regexp_replace(bits, r"^(.{8})(.{4})(.{4})(.{4})(.{12})$", "$1-$2-$3-$4-$5")


TRIGGER_COLUMNS = (
    "operation_id",
    "client_id",
    "symbol",
    "side",
    "stop_price",
    "trigger_price",
    "quantity",
    "source",
    "strategy_id",
)
LAST_NON_NULL = ("exchange_order_id", "fill_price", "slippage_pct", "error_message")


def status_after(event_type: Column) -> Column:
    """Return the status an event leaves its execution in (null: no change)."""
    cases = [(event_type == kind, F.lit(status)) for kind, status in STATUS_AFTER.items()]
    return reduce(lambda acc, case: acc.when(*case), cases[1:], F.when(*cases[0]))


def build_stop_executions(
    events: DataFrame, built_at: datetime, untypeable: Observation | None = None
) -> DataFrame:
    """Replay bronze ``events`` into one row per execution (schema :data:`SCHEMA`).

    ``built_at`` becomes ``created_at`` (when silver was built, for freshness checks).
    Payload values that cannot be typed are nulled, and counted into ``untypeable`` if
    given (the frame must then be computed once).

    One shuffle: each execution's events are collected into one array, sorted by
    (occurred_at, event_seq), freed of repeated event_ids (the first copy is kept), and
    every column is read off that array. This is several times faster than a window for
    the duplicates plus one ``min_by``/``max_by`` per column (each a struct comparison).
    """
    fields = ("occurred_at", "event_seq", "event_id", "event_type", "retry_count",
              *TRIGGER_COLUMNS, *LAST_NON_NULL)  # fmt: skip
    # The payload is parsed before the shuffle: a long travels instead of the JSON text.
    raw_strategy = F.get_json_object("payload_json", "$.strategy_id")
    parsed = events.filter(F.col("execution_token").isNotNull()).withColumn(
        "strategy_id", typed(raw_strategy, LongType())
    )
    if untypeable is not None:
        bad = raw_strategy.isNotNull() & F.col("strategy_id").isNull()
        shown = F.format_string("event %s: %s", F.col("event_id"), raw_strategy)
        parsed = observe_untypeable(parsed, untypeable, {"strategy_id": (bad, shown)})
    collected = (
        parsed
        # Shuffle the events themselves: a partial collect_list before the shuffle would
        # only sort them once more (it falls back to sorting past 128 keys per task).
        .repartition("execution_token")
        .groupBy("execution_token")
        .agg(F.array_sort(F.collect_list(F.struct(*fields))).alias("_sorted"))
    )
    ids = F.transform("_sorted", lambda e: e["event_id"])
    replay = F.filter("_sorted", lambda e, i: F.array_position(ids, e["event_id"]) == i + 1)
    staged = collected.select("execution_token", replay.alias("_e"))

    def of_kind(kind: str, position: int) -> Column:
        """Return the first (1) or last (-1) event of type ``kind`` (null if none)."""
        return F.try_element_at(F.filter("_e", lambda e: e["event_type"] == kind), F.lit(position))

    def last_non_null(column: str) -> Column:
        with_value = F.filter("_e", lambda e: e[column].isNotNull())
        return F.try_element_at(with_value, F.lit(-1))[column]

    trigger = F.coalesce(of_kind(TRIGGERED, 1), F.try_element_at("_e", F.lit(1)))
    states = F.filter(
        F.transform("_e", lambda e: status_after(e["event_type"])), lambda s: s.isNotNull()
    )
    changes = F.filter("_e", lambda e: status_after(e["event_type"]).isNotNull())
    replayed = staged.select(
        "execution_token",
        trigger.alias("_trigger"),
        F.try_element_at(states, F.lit(-1)).alias("status"),
        of_kind(TRIGGERED, 1)["occurred_at"].alias("triggered_at"),
        of_kind(SUBMITTED, 1)["occurred_at"].alias("submitted_at"),
        of_kind(EXECUTED, -1)["occurred_at"].alias("executed_at"),
        of_kind(FAILED, -1)["occurred_at"].alias("failed_at"),
        F.try_element_at(changes, F.lit(-1))["occurred_at"].alias("resolved_at"),
        F.try_element_at("_e", F.lit(1))["occurred_at"].alias("_first_at"),
        *[last_non_null(column).alias(column) for column in LAST_NON_NULL],
        F.exists("_e", lambda e: e["event_type"] == SLIPPAGE_BREACH).alias("slippage_breach"),
        F.coalesce(F.array_max(F.transform("_e", lambda e: e["retry_count"])), F.lit(0)).alias(
            "retry_count"
        ),
        F.size("_e").alias("event_count"),
        F.array_min(F.transform("_e", lambda e: e["event_seq"])).alias("first_event_seq"),
        F.array_max(F.transform("_e", lambda e: e["event_seq"])).alias("last_event_seq"),
        F.transform("_e", lambda e: e["event_id"]).alias("source_event_ids"),
    )
    return replayed.select(
        uuid5_column(F.col("execution_token")).alias("execution_id"),
        "execution_token",
        F.col("_trigger.operation_id").alias("operation_id"),
        F.col("_trigger.strategy_id").alias("strategy_id"),
        F.col("_trigger.symbol").alias("symbol"),
        F.col("_trigger.side").alias("side"),
        "status",
        *[F.col(f"_trigger.{c}").alias(c) for c in ("stop_price", "trigger_price", "quantity")],
        "triggered_at",
        "submitted_at",
        "executed_at",
        "failed_at",
        "resolved_at",
        "exchange_order_id",
        "fill_price",
        "slippage_pct",
        "slippage_breach",
        F.col("retry_count").cast(IntegerType()).alias("retry_count"),
        "error_message",
        F.col("_trigger.source").alias("source"),
        F.col("event_count").cast(IntegerType()).alias("event_count"),
        "first_event_seq",
        "last_event_seq",
        "source_event_ids",
        F.lit(built_at).cast(TimestampType()).alias("created_at"),
        F.col("_trigger.client_id").alias("client_id"),
        F.to_date(F.coalesce("triggered_at", "_first_at")).alias("date"),
    )


def execution_partitions(events: DataFrame) -> DataFrame:
    """Return (execution_token, client_id, date, first_date) per execution, from the
    events alone.

    ``client_id`` / ``date`` are the partition the replay puts each execution in (its
    trigger's client and UTC date, else its first event's); ``first_date`` is the date
    of its first event (all its events lie on that day or the next). Plain min
    aggregates: cheap next to the replay, and repeated events change nothing.
    """
    is_trigger = F.col("event_type") == TRIGGERED
    return (
        events.filter(F.col("execution_token").isNotNull())
        .groupBy("execution_token")
        .agg(
            F.coalesce(F.min(F.when(is_trigger, F.col("client_id"))), F.min("client_id")).alias(
                "client_id"
            ),
            F.to_date(
                F.coalesce(F.min(F.when(is_trigger, F.col("occurred_at"))), F.min("occurred_at"))
            ).alias("date"),
            F.to_date(F.min("occurred_at")).alias("first_date"),
        )
    )


@dataclass(frozen=True)
class Increment:
    """What an incremental run rewrites, found from cheap aggregates over the events."""

    partitions: dict[str, date | None]  # path (client_id=1/date=...) -> its date
    executions: int  # executions that bronze puts in those partitions (reconciliation)
    untouched: frozenset[str]  # partitions that also hold executions not touched
    first_dates: tuple[date, date] | None  # first-event dates of the touched executions


def plan_increment(
    located: DataFrame, touched: DataFrame, previous: DataFrame | None = None
) -> Increment:
    """Return the partitions that the ``touched`` executions fall in, now or before.

    ``located`` is :func:`execution_partitions` (where each execution belongs now);
    ``previous`` holds (execution_token, client_id, date) of the output as it stands,
    where an execution may sit elsewhere (its trigger arrived late). One small collect.
    """
    marked = located.join(touched.withColumn("_touched", F.lit(1)), "execution_token", "left")
    is_touched = F.col("_touched").isNotNull()
    per_partition = marked.groupBy(*PARTITIONS).agg(
        F.count("*").alias("executions"),
        F.count("_touched").alias("touched"),
        F.min(F.when(is_touched, F.col("first_date"))).alias("first_from"),
        F.max(F.when(is_touched, F.col("first_date"))).alias("first_until"),
        F.lit(False).alias("before"),
    )
    if previous is not None:
        before = previous.join(touched, "execution_token", "left_semi").select(
            *PARTITIONS,
            F.lit(0).cast(LongType()).alias("executions"),
            F.lit(0).cast(LongType()).alias("touched"),
            F.lit(None).cast(DateType()).alias("first_from"),
            F.lit(None).cast(DateType()).alias("first_until"),
            F.lit(True).alias("before"),
        )
        per_partition = (
            per_partition.unionByName(before)
            .groupBy(*PARTITIONS)
            .agg(
                F.sum("executions").alias("executions"),
                F.sum("touched").alias("touched"),
                F.min("first_from").alias("first_from"),
                F.max("first_until").alias("first_until"),
                F.max("before").alias("before"),
            )
        )
    rows = per_partition.filter((F.col("touched") > 0) | F.col("before")).collect()
    paths = {partition_path(PARTITIONS, (row.client_id, row.date)): row for row in rows}
    froms = [row.first_from for row in rows if row.first_from is not None]
    untils = [row.first_until for row in rows if row.first_until is not None]
    return Increment(
        partitions={path: row.date for path, row in paths.items()},
        executions=sum(row.executions for row in rows),
        untouched=frozenset(p for p, row in paths.items() if row.executions > row.touched),
        first_dates=(min(froms), max(untils)) if froms else None,
    )


def merge_increment(
    replayed: DataFrame, rebuilt: DataFrame, current: DataFrame, partitions: Sequence[str]
) -> DataFrame:
    """Return the whole content of ``partitions`` after an incremental replay.

    ``replayed`` holds the executions of the tokens in ``rebuilt``, replayed again;
    ``current`` the rows published in those partitions (paths) so far. The executions not rebuilt
    are kept as published; a rebuilt one replaces its old row wherever that was.
    """
    kept = current.join(rebuilt, "execution_token", "left_anti")
    return in_partitions(replayed, PARTITIONS, partitions).unionByName(
        in_partitions(kept, PARTITIONS, partitions)
    )


def expected_executions(events: DataFrame, executions: DataFrame) -> int:
    """Return how many executions the input events hold for ``executions``' partitions
    (the bronze side of the row-count reconciliation)."""
    partitions = executions.select(*PARTITIONS).distinct()
    return execution_partitions(events).join(partitions, list(PARTITIONS), "left_semi").count()


def quality_checks(expected_rows: int, untypeable: Observation | None = None) -> list[Check]:
    """Return the contract of silver.stop_executions (SPEC §4) plus reconciliation
    (``untypeable``: payload values nulled, see :func:`build_stop_executions`)."""
    slippage = F.abs(F.col("slippage_pct"))
    observed: list[Check] = (
        [] if untypeable is None else [UntypeableCheck(untypeable, ("strategy_id",))]
    )
    return [
        not_null("execution_id"),
        not_null("operation_id"),
        not_null("status"),
        RowCheck("status_known", ~F.col("status").isin(*STATUSES), "unknown statuses"),
        RowCheck(
            "slippage_within_50_pct",
            slippage > MAX_ABS_SLIPPAGE,
            f"rows beyond ±{MAX_ABS_SLIPPAGE}%",
            stat=slippage,
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
        *observed,
    ]


# --- entry point -------------------------------------------------------------------------


def run(spark: SparkSession, config: JobConfig, report: Report) -> None:
    """Rebuild the partitions of silver.stop_executions that the run's scope covers."""
    if config.mode == "dates":
        # An increment is small: its shuffles need no more partitions than a few per
        # core (fewer shuffle files to write and read, fewer tasks).
        with shuffle_partitions(spark, max(4, 2 * spark.sparkContext.defaultParallelism)):
            run_increment(spark, config, report)
        return
    first = last = None
    if config.mode == "range":
        assert config.start_date is not None
        assert config.end_date is not None
        first, last = config.start_date - timedelta(days=1), config.end_date + timedelta(days=1)
    events = read_dataset(spark, config.lake_uri, BRONZE_EVENTS, first, last)
    report.inputs["bronze.events"] = events.count()

    in_scope = events
    if config.mode == "range":
        # Only the executions of the dates in range are replayed (the replay is the
        # costly part); which they are comes from cheap aggregates over the events.
        tokens = execution_partitions(events).filter(
            F.col("date").between(config.start_date, config.end_date)
        )
        in_scope = events.join(tokens.select("execution_token"), "execution_token", "left_semi")
    untypeable = Observation()
    executions = build_stop_executions(in_scope, built_at=datetime.now(UTC), untypeable=untypeable)
    if config.mode == "range":
        executions = executions.filter(F.col("date").between(config.start_date, config.end_date))

    def checks(staged: DataFrame) -> list[Check]:
        return quality_checks(expected_executions(events, staged), untypeable)

    output = Output(config.output or DATASET, OUTPUT.partition_by, OUTPUT.sort_by)
    write_checked(spark, config, executions, output, checks, report)


def run_increment(spark: SparkSession, config: JobConfig, report: Report) -> None:
    """Replay the executions that new bronze events touch and merge them into the output.

    New events are those of ``--new-files`` if given, else every event on ``--dates``.
    Only the touched executions are replayed; the other executions of the partitions
    they fall in (now, or as published before) are kept as published. A partition that
    is not published yet (a new ``_v2`` output, a lost partition) is replayed whole. The
    reconciliation counts every execution that bronze puts in the rewritten partitions.
    """
    assert config.output
    day = timedelta(days=1)
    first, last = config.dates[0], config.dates[-1]
    # A touched execution's events lie within a day of its new ones; the executions of
    # the partitions it falls in, within a day of those.
    events = read_dataset(spark, config.lake_uri, BRONZE_EVENTS, first - 2 * day, last + 2 * day)
    if config.new_files:
        new = read_files(spark, config.lake_uri, BRONZE_EVENTS, config.new_files)
    else:
        new = events.filter(F.col("date").isin(list(config.dates)))
    per_token = new.groupBy("execution_token").agg(F.count("*").alias("events")).cache()
    located = execution_partitions(events)
    try:
        touched = per_token.filter(F.col("execution_token").isNotNull()).select("execution_token")
        layout = LAYOUT.renamed(config.output)
        previous = read_dataset(spark, config.lake_uri, layout, first - day, last + day)
        plan = plan_increment(located, touched, previous.select("execution_token", *PARTITIONS))
        live = dataset_uri(config.lake_uri, layout.dataset)
        published = LakeFS(spark).existing(live, PARTITIONS, plan.partitions)

        # Replayed: the touched executions, from their first event's day to the next.
        # A partition not published yet (a new _v2 output, a lost partition) that holds
        # other executions too is replayed whole, from the whole window.
        rebuilt, window = touched, events
        whole = sorted(plan.untouched - set(published))
        if whole:
            others = in_partitions(located, PARTITIONS, whole).select("execution_token")
            rebuilt = rebuilt.unionByName(others).distinct()
        elif plan.first_dates is not None:
            window = events.filter(date_between(plan.first_dates[0], plan.first_dates[1] + day))
        rebuilt = F.broadcast(rebuilt)  # tens of thousands of tokens: a few MB
        untypeable = Observation()
        replayed = build_stop_executions(
            window.join(rebuilt, "execution_token", "left_semi"),
            built_at=datetime.now(UTC),
            untypeable=untypeable,
        )
        current = read_partitions(spark, config.lake_uri, layout, published)
        executions = merge_increment(replayed, rebuilt, current, sorted(plan.partitions))
        output = Output(config.output, OUTPUT.partition_by, OUTPUT.sort_by)
        checks = quality_checks(plan.executions, untypeable)
        write_checked(
            spark, config, executions, output, checks, report, also_replace=sorted(plan.partitions)
        )
        report.inputs["bronze.events"] = per_token.agg(F.sum("events")).first()[0] or 0
    finally:
        per_token.unpersist()
