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

Tenants: all events of one execution belong to one client. A token whose events carry
more than one ``client_id`` is never merged into a row: the execution is quarantined
whole (its bronze events go to ``quarantine/<output>/run=<run id>/`` with ``reason``),
counted by the warning check ``execution_token_single_client``, and a row published for
it before is removed. Quarantine rather than a critical check, because bronze is
immutable: a failing check would block every later run; rather than a split per client,
because which client's execution it really is cannot be told from the events.

Scope of a run. Events may arrive any number of days after their execution's trigger
(a BLOCKED execution submitted days later), and in any order of exports; no window of
dates is assumed:

- full build: every execution, from all of bronze.
- ``--start-date/--end-date`` (backfill): every execution whose partition date is in the
  range, replayed from all its events, before or after the range (never a partial row);
  the range's published partitions are rewritten even if nothing is left in them. An
  execution of the range that the output has outside it (a stale output) fails
  ``execution_id_unique_in_dataset``: rebuild a wider range, or in full.
- ``--dates`` (daily): the executions with an event in the new files (or on the dates)
  are *touched*. Their events are found by token on any date (:func:`events_of`: one
  scan of the token column, then only the dates that hold them). Where they were
  published before is where their events from before the new files put them (with
  ``--dates`` alone: looked up by token over the whole output). The partitions they fall
  in now and were published in before are rewritten; the other executions there are
  kept as published.

``execution_id`` is checked unique in the staged partitions and against the rest of the
output (``execution_id_unique_in_dataset``): a daily run looks up every token it writes
by token over the whole output; a full build or backfill reads the partitions it does
not rewrite. The reconciliation counts what bronze puts in the rewritten partitions:
the touched executions (exactly) and the others found on those partitions' dates, less
those the output has elsewhere (their trigger lies on an earlier day); one that the
output has nowhere is located from all its events, and replayed if its partition is not
published yet (a new ``_v2`` output), else the count fails (a published partition lost it).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
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
    DisjointCheck,
    RowCheck,
    TallyCheck,
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
    in_partitions,
    partition_key,
    read_dataset,
    read_files,
    read_partitions,
)
from spark_jobs.common.decimals import typed
from spark_jobs.common.lake import LakeFS, dataset_uri, partition_path, partition_paths
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
    clients = F.array_compact(F.array_distinct(F.transform("_sorted", lambda e: e["client_id"])))
    # A token whose events carry two clients is never merged into one row (see the module
    # docstring): the callers quarantine it; here it is dropped, whoever the caller is.
    staged = collected.filter(F.size(clients) <= 1).select("execution_token", replay.alias("_e"))

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
    """Return (execution_token, client_id, date, first_date, mixed) per execution, from
    the events alone.

    ``client_id`` / ``date`` are the partition the replay puts each execution in (its
    trigger's client and UTC date, else its first event's); ``first_date`` is the date
    of its first event; ``mixed`` says its events carry more than one client_id (it is
    quarantined, never published). Plain min/max aggregates: cheap next to the replay,
    and repeated events change nothing. Exact only if ``events`` holds every event of
    each execution (:func:`events_of`).
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
            F.coalesce(F.min("client_id") != F.max("client_id"), F.lit(False)).alias("mixed"),
        )
    )


def events_of(bronze: DataFrame, tokens: DataFrame) -> DataFrame:
    """Return every event in ``bronze`` of the executions in ``tokens``, whatever its date.

    Events may arrive any number of days after their execution's trigger, so no window of
    dates is assumed: one scan of the token column (the date comes from the path) finds
    the dates that hold them, then only those dates are read whole. ``tokens`` is small
    (an increment's executions): it is broadcast, so the scans are not shuffled.
    """
    wanted = F.broadcast(tokens.select("execution_token").distinct())
    holding = bronze.select("execution_token", "date").join(wanted, "execution_token", "left_semi")
    dates = sorted(row.date for row in holding.select("date").distinct().collect())
    return bronze.filter(F.col("date").isin(dates)).join(wanted, "execution_token", "left_semi")


@dataclass(frozen=True)
class Increment:
    """What an incremental run rewrites, found from the touched executions' events."""

    partitions: dict[str, date | None]  # path (client_id=1/date=...) -> its date
    executions: int  # touched executions to publish (all of them fall in ``partitions``)
    quarantined: tuple[str, ...]  # touched tokens whose events carry several clients


def plan_increment(located: DataFrame, previous: DataFrame) -> Increment:
    """Return the partitions that the touched executions fall in, now or before.

    ``located`` is :func:`execution_partitions` of every event of the touched executions;
    ``previous`` holds (execution_token, client_id, date) of the output as it stands,
    looked up by token over the whole output: an execution sits elsewhere when its
    trigger arrived late, and a quarantined one must leave its old partition. One collect.
    """
    now = located.select(
        *PARTITIONS,
        F.when(~F.col("mixed"), F.lit(1)).alias("publish"),
        F.when(F.col("mixed"), F.col("execution_token")).alias("quarantine"),
    )
    before = previous.select(
        *PARTITIONS,
        F.lit(None).cast(IntegerType()).alias("publish"),
        F.lit(None).cast(StringType()).alias("quarantine"),
    )
    rows = (
        now.unionByName(before)
        .groupBy(*PARTITIONS)
        .agg(
            F.count("publish").alias("executions"),
            F.count(F.lit(1)).alias("rows"),
            F.collect_list("quarantine").alias("quarantine"),
        )
        .collect()
    )
    # A partition holding only quarantined executions (and published nowhere) is left out.
    kept = [row for row in rows if row.executions or row.rows > len(row.quarantine)]
    return Increment(
        partitions={partition_path(PARTITIONS, (r.client_id, r.date)): r.date for r in kept},
        executions=sum(row.executions for row in rows),
        quarantined=tuple(sorted(t for row in rows for t in row.quarantine)),
    )


def merge_increment(
    replayed: DataFrame, rebuilt: DataFrame, current: DataFrame, partitions: Sequence[str]
) -> DataFrame:
    """Return the whole content of ``partitions`` after an incremental replay.

    ``replayed`` holds the executions of the tokens in ``rebuilt``, replayed again;
    ``current`` the rows published in those partitions (paths) so far. The executions not
    rebuilt are kept as published; a rebuilt one replaces its old row wherever that was
    (or disappears, if it is quarantined now).
    """
    kept = current.join(rebuilt, "execution_token", "left_anti")
    return in_partitions(replayed, PARTITIONS, partitions).unionByName(
        in_partitions(kept, PARTITIONS, partitions)
    )


QUARANTINE_REASON = "execution_token spans clients"


def quality_checks(
    expected_rows: int,
    quarantined: int = 0,
    elsewhere: DataFrame | None = None,
    few: bool = False,
    untypeable: Observation | None = None,
) -> list[Check]:
    """Return the contract of silver.stop_executions (SPEC §4) plus reconciliation.

    ``quarantined``: executions set aside because their token spans clients (a warning
    shown on the run); ``elsewhere``: the output's rows outside the partitions this run
    rewrites, against which ``execution_id`` must stay unique too (``few``: the staged
    rows are an increment's, few enough to broadcast); ``untypeable``: payload values
    nulled, see :func:`build_stop_executions`.
    """
    slippage = F.abs(F.col("slippage_pct"))
    observed: list[Check] = (
        [] if untypeable is None else [UntypeableCheck(untypeable, ("strategy_id",))]
    )
    checks: list[Check] = [
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
    ]
    if elsewhere is not None:
        checks.append(
            DisjointCheck(
                "execution_id_unique_in_dataset",
                ("execution_id",),
                elsewhere,
                "partitions this run does not rewrite",
                broadcast=few,
            )
        )
    checks += [
        CountCheck("row_count_matches_bronze", expected_rows, "distinct bronze execution_tokens"),
        TallyCheck(
            "execution_token_single_client",
            quarantined,
            f"executions quarantined ({QUARANTINE_REASON})",
            critical=False,
        ),
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
    return checks


# --- entry point -------------------------------------------------------------------------


def quarantine(
    spark: SparkSession, config: JobConfig, events: DataFrame, tokens: Sequence[str]
) -> None:
    """Write the events of ``tokens`` under ``quarantine/<output>/run=<run id>/``, each
    with the reason (nothing is written when there are none)."""
    if not tokens:
        return
    output = (config.output or DATASET).replace(".", "/", 1)
    (
        events.filter(F.col("execution_token").isin(list(tokens)))
        .withColumn("reason", F.lit(QUARANTINE_REASON))
        .coalesce(1)
        .write.mode("overwrite")
        .parquet(f"{config.lake_uri}/quarantine/{output}/run={config.run_id}")
    )


def published_outside(
    spark: SparkSession, config: JobConfig, staged: DataFrame, also_replace: Sequence[str] = ()
) -> DataFrame:
    """Return the output's published rows outside the partitions that ``staged`` (plus
    ``also_replace``) will replace: what must not hold a staged execution_id again.

    Only the partitions outside are read (none: an empty frame, and no join at all)."""
    assert config.output
    layout = LAYOUT.renamed(config.output)
    targets = partition_paths(PARTITIONS, staged.select(*PARTITIONS).distinct().collect())
    live = dataset_uri(config.lake_uri, layout.dataset)
    outside = set(LakeFS(spark).partitions(live, PARTITIONS)) - {*targets, *also_replace}
    return read_partitions(spark, config.lake_uri, layout, sorted(outside))


def run(spark: SparkSession, config: JobConfig, report: Report) -> None:
    """Rebuild the partitions of silver.stop_executions that the run's scope covers."""
    if config.mode == "dates":
        # An increment is small: its shuffles need no more partitions than a few per
        # core (fewer shuffle files to write and read, fewer tasks).
        with shuffle_partitions(spark, max(4, 2 * spark.sparkContext.defaultParallelism)):
            run_increment(spark, config, report)
        return
    assert config.output
    events = read_dataset(spark, config.lake_uri, BRONZE_EVENTS)
    report.inputs["bronze.events"] = events.count()
    located = execution_partitions(events)
    also_replace: list[str] = []
    if config.mode == "range":
        # Every execution triggered in the range is replayed whole, with its events from
        # before or after the range (a late event is on any later date): a backfill never
        # publishes a partial row. Its partitions are rewritten even if none is left.
        located = located.filter(F.col("date").between(config.start_date, config.end_date))
        live = dataset_uri(config.lake_uri, config.output)
        first, last = str(config.start_date), str(config.end_date)
        also_replace = [
            path
            for path in LakeFS(spark).partitions(live, PARTITIONS)
            if first <= path.rsplit("date=", 1)[-1] <= last
        ]
    (tally,) = located.agg(
        F.count_if(~F.col("mixed")).alias("executions"),
        F.collect_list(F.when(F.col("mixed"), F.col("execution_token"))).alias("quarantine"),
    ).collect()
    in_scope = events
    if config.mode == "range":
        in_scope = events.join(located.select("execution_token"), "execution_token", "left_semi")
    quarantine(spark, config, events, tally.quarantine)
    untypeable = Observation()
    executions = build_stop_executions(in_scope, built_at=datetime.now(UTC), untypeable=untypeable)

    def checks(staged: DataFrame) -> list[Check]:
        elsewhere = published_outside(spark, config, staged, also_replace)
        return quality_checks(
            tally.executions, len(tally.quarantine), elsewhere, untypeable=untypeable
        )

    output = Output(config.output, OUTPUT.partition_by, OUTPUT.sort_by)
    write_checked(spark, config, executions, output, checks, report, also_replace=also_replace)


def run_increment(spark: SparkSession, config: JobConfig, report: Report) -> None:
    """Replay the executions that new bronze events touch and merge them into the output.

    New events are those of ``--new-files`` if given, else every event on ``--dates``.
    The touched executions are replayed from all their events, found by token on any
    date; the partitions they were published in are rewritten too. The other executions
    of those partitions are kept as published; one that bronze puts there but that is
    published nowhere is replayed if its partition is not published yet (a new ``_v2``
    output, a lost partition), else the reconciliation fails. ``execution_id`` is
    checked against the whole output, not only the rewritten partitions.
    """
    assert config.output
    layout = LAYOUT.renamed(config.output)
    bronze = read_dataset(spark, config.lake_uri, BRONZE_EVENTS)
    silver = read_dataset(spark, config.lake_uri, layout)
    if config.new_files:
        new = read_files(spark, config.lake_uri, BRONZE_EVENTS, config.new_files)
    else:
        new = bronze.filter(F.col("date").isin(list(config.dates)))
    per_token = new.groupBy("execution_token").agg(F.count("*").alias("events")).cache()
    where: DataFrame | None = None
    try:
        touched = per_token.filter(F.col("execution_token").isNotNull()).select("execution_token")
        if config.new_files:
            # Where the output has a touched execution is where its events from before
            # this run's files put it: no scan of the output needed for that. (Should it
            # be elsewhere all the same, execution_id_unique_in_dataset fails the run.)
            parts = F.split(F.input_file_name(), "/")
            files = F.concat_ws("/", F.element_at(parts, -2), F.element_at(parts, -1))
            new_files = sorted({"/".join(key.split("/")[-2:]) for key in config.new_files})
            touched_events = events_of(bronze.withColumn("_new", files.isin(new_files)), touched)
            before = execution_partitions(touched_events.filter(~F.col("_new")))
            previous = before.filter(~F.col("mixed")).select("execution_token", *PARTITIONS)
            touched_events = touched_events.drop("_new")
        else:  # every event of the dates counts as new: look the tokens up in the output
            touched_events = events_of(bronze, touched)
            previous = silver.select("execution_token", *PARTITIONS).join(
                F.broadcast(touched), "execution_token", "left_semi"
            )
        plan = plan_increment(execution_partitions(touched_events), previous)
        paths = sorted(plan.partitions)
        live = dataset_uri(config.lake_uri, layout.dataset)
        published = LakeFS(spark).existing(live, PARTITIONS, paths)
        current = read_partitions(spark, config.lake_uri, layout, published)

        # The other executions of those partitions, as bronze places them: each has its
        # trigger (or, lacking one, its first event) on one of their dates.
        days = sorted({d for d in plan.partitions.values() if d is not None})
        others = in_partitions(
            execution_partitions(bronze.filter(F.col("date").isin(days))), PARTITIONS, paths
        ).join(F.broadcast(touched), "execution_token", "left_anti")
        # Where the output has them (and every other token this run writes), by token.
        lookup = (
            touched.unionByName(others.select("execution_token"))
            .unionByName(current.select("execution_token"))
            .distinct()
        )
        where = (
            silver.select("execution_token", "execution_id", *PARTITIONS)
            .join(F.broadcast(lookup), "execution_token", "left_semi")
            .withColumn("_rewritten", partition_key(PARTITIONS).isin(paths))
            .persist()
        )
        placed = where.groupBy("execution_token").agg(F.max("_rewritten").alias("_rewritten"))
        # An execution that only looks like one of these partitions' from their dates
        # (its trigger is on an earlier day) is published elsewhere: not counted.
        (tally,) = (
            others.join(placed, "execution_token", "left")
            .agg(
                F.count_if(F.col("_rewritten")).alias("kept"),
                F.count_if(F.col("_rewritten").isNull()).alias("lost"),
            )
            .collect()
        )
        expected = plan.executions + tally.kept
        rebuilt, replay_events = touched, touched_events
        if tally.lost:
            # Published nowhere: where it belongs comes from all its events.
            lost = others.join(placed, "execution_token", "left_anti").select("execution_token")
            lost_events = events_of(bronze, lost)
            lost_here = in_partitions(execution_partitions(lost_events), PARTITIONS, paths)
            lost_here = lost_here.filter(~F.col("mixed")).select("execution_token", *PARTITIONS)
            expected += lost_here.count()
            unpublished = sorted(set(paths) - set(published))
            whole = in_partitions(lost_here, PARTITIONS, unpublished).select("execution_token")
            rebuilt = touched.unionByName(whole)
            replay_events = touched_events.unionByName(
                lost_events.join(F.broadcast(whole), "execution_token", "left_semi")
            )
        rebuilt = F.broadcast(rebuilt)  # tens of thousands of tokens: a few MB
        quarantine(spark, config, touched_events, plan.quarantined)
        untypeable = Observation()
        replayed = build_stop_executions(
            replay_events, built_at=datetime.now(UTC), untypeable=untypeable
        )
        executions = merge_increment(replayed, rebuilt, current, paths)
        output = Output(config.output, OUTPUT.partition_by, OUTPUT.sort_by)
        elsewhere = where.filter(~F.col("_rewritten")).select("execution_id", *PARTITIONS)
        checks = quality_checks(
            expected, len(plan.quarantined), elsewhere, few=True, untypeable=untypeable
        )
        write_checked(spark, config, executions, output, checks, report, also_replace=paths)
        report.inputs["bronze.events"] = per_token.agg(F.sum("events")).first()[0] or 0
    finally:
        per_token.unpersist()
        if where is not None:
            where.unpersist()
