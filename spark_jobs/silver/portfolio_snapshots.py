"""silver.portfolio_snapshots: each client's portfolio value over time, with returns.

Per client, ordered by (timestamp, snapshot id):

- ``period_return``     = total_value / previous total_value - 1 (null for the first
  snapshot, or when the previous value is 0);
- ``cumulative_return`` = total_value / base_value - 1, where ``base_value`` is the total
  value of the client's first snapshot (the ROI since then);
- ``running_peak``      = the highest total_value so far;
- ``drawdown``          = (running_peak - total_value) / running_peak, from 0 (at a peak)
  to 1; the maximum drawdown of a period is ``MAX(drawdown)``.

The Sharpe ratio of a client over a period, with a per-period risk-free rate r_f (0 for a
crypto book is the usual choice) and N snapshots a year (8760 for hourly snapshots)::

    sharpe = (AVG(period_return) - r_f) / STDDEV_SAMP(period_return) * SQRT(N)

This assumes evenly spaced snapshots; with uneven ones, resample to a fixed step first.
Returns are Decimal(20, 10) fractions (0.0123 = +1.23%); money stays Decimal(20, 8). A
return is the exact quotient (a - b) / b rounded once, half even, at 10 places
(:mod:`spark_jobs.common.decimals`). One that does not fit Decimal(20, 10) (|return| >=
10^10: a previous value of 0.00000001 then a deposit) is nulled and counted by the
warning check ``untypeable_values``, with an example, instead of failing the run.

Bronze keeps 90 days, silver a year: the history before a client's oldest bronze snapshot
comes from the output dataset itself, as a *seed* (the last silver row before it carries
the base value, the running peak and the previous value), so returns stay measured from
the same first snapshot after bronze has been trimmed.

Scope: ``--dates`` rewrites, for each client with a snapshot on those dates, every
partition from the earliest such date on (later running peaks and returns depend on it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from pyspark.sql import Column, DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DecimalType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from spark_jobs.common.bronze import BRONZE_PORTFOLIO
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
from spark_jobs.common.datasets import MONEY, Layout, read_dataset
from spark_jobs.common.decimals import divide, round_half_even, typed
from spark_jobs.common.output import Output, write_checked
from spark_jobs.common.report import Report

DATASET = "silver.portfolio_snapshots"
RETURN = DecimalType(20, 10)
#: A return before it is narrowed to RETURN: (a - b) / b < 10^20 for money a, b.
WIDE_RETURN = DecimalType(31, 10)
RETURNS = ("period_return", "cumulative_return", "drawdown")

SCHEMA = StructType(
    [
        StructField("snapshot_id", LongType()),
        StructField("timestamp", TimestampType()),
        StructField("quote_asset", StringType()),
        StructField("total_value", MONEY),
        StructField("cash", MONEY),
        StructField("base_value", MONEY),
        StructField("period_return", RETURN),
        StructField("cumulative_return", RETURN),
        StructField("running_peak", MONEY),
        StructField("drawdown", RETURN),
        StructField("created_at", TimestampType()),
        StructField("client_id", LongType()),
        StructField("date", DateType()),
    ]
)
PARTITIONS = ("client_id", "date")
LAYOUT = Layout(DATASET, SCHEMA, PARTITIONS)
OUTPUT = Output(DATASET, PARTITIONS, sort_by=("timestamp", "snapshot_id"))


# --- transform ---------------------------------------------------------------------------


def _change(value: Column, base: Column) -> Column:
    """Return (value - base) / base, exact then rounded half even at 10 places, as
    :data:`WIDE_RETURN`; null when base is 0 or null.

    value - base is Decimal(21, 8); a negative base flips both signs (the quotient is the
    same) so that :func:`divide` gets a positive divisor.
    """
    change = typed(value - base, DecimalType(21, 8))
    flip = base < 0
    quotient = divide(
        F.when(flip, -change).otherwise(change),
        F.abs(base),
        DecimalType(21, 8),
        MONEY,
        RETURN.scale,
    )
    return round_half_even(quotient, WIDE_RETURN)


def seed_rows(previous: DataFrame, portfolio: DataFrame) -> DataFrame:
    """Return, per client, the last ``previous`` silver row older than its bronze history.

    ``previous`` is the output dataset as it stands; clients absent from ``portfolio`` are
    left out (nothing of theirs is recomputed).
    """
    oldest = portfolio.groupBy("client_id").agg(F.min("timestamp").alias("_oldest"))
    older = previous.join(oldest, "client_id").filter(F.col("timestamp") < F.col("_oldest"))
    latest = Window.partitionBy("client_id").orderBy(F.desc("timestamp"), F.desc("snapshot_id"))
    return (
        older.withColumn("_n", F.row_number().over(latest))
        .filter("_n = 1")
        .select(
            "client_id", "snapshot_id", "timestamp", "total_value", "base_value", "running_peak"
        )
    )


def build_portfolio_snapshots(
    portfolio: DataFrame,
    built_at: datetime,
    seeds: DataFrame | None = None,
    untypeable: Observation | None = None,
) -> DataFrame:
    """Return bronze ``portfolio`` snapshots with returns and drawdown (schema :data:`SCHEMA`).

    ``seeds`` (from :func:`seed_rows`) carry each client's history from before its oldest
    bronze snapshot; ``built_at`` becomes ``created_at``. Returns too large for
    :data:`RETURN` are nulled and counted into ``untypeable`` if given.
    """
    rows = portfolio.dropDuplicates(["id"]).select(
        "client_id",
        F.col("id").alias("snapshot_id"),
        "timestamp",
        "quote_asset",
        "total_value",
        "cash",
        F.lit(False).alias("_seed"),
        F.lit(None).cast(MONEY).alias("_seed_base"),
        F.lit(None).cast(MONEY).alias("_seed_peak"),
    )
    if seeds is not None:
        rows = rows.unionByName(
            seeds.select(
                "client_id",
                "snapshot_id",
                "timestamp",
                F.lit(None).cast(StringType()).alias("quote_asset"),
                "total_value",
                F.lit(None).cast(MONEY).alias("cash"),
                F.lit(True).alias("_seed"),
                F.col("base_value").alias("_seed_base"),
                F.col("running_peak").alias("_seed_peak"),
            )
        )
    ordered = Window.partitionBy("client_id").orderBy("timestamp", "snapshot_id")
    so_far = ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    value = F.col("total_value")
    with_history = rows.select(
        "*",
        F.lag(value).over(ordered).alias("_previous"),
        F.first(F.coalesce("_seed_base", value)).over(so_far).alias("base_value"),
        F.max(F.greatest(value, F.coalesce("_seed_peak", value)))
        .over(so_far)
        .alias("running_peak"),
    )
    peak = F.col("running_peak")
    wide = with_history.filter(~F.col("_seed")).select(
        "*",
        _change(value, F.col("_previous")).alias("_period_return"),
        _change(value, F.col("base_value")).alias("_cumulative_return"),
        F.when(peak > 0, -_change(value, peak))
        .otherwise(F.lit(0).cast(WIDE_RETURN))
        .alias("_drawdown"),
    )
    if untypeable is not None:
        kinds = {}
        for name in RETURNS:
            column = F.col(f"_{name}")
            shown = F.format_string("snapshot %d: %s", "snapshot_id", column.cast("string"))
            kinds[name] = (column.isNotNull() & typed(column, RETURN).isNull(), shown)
        wide = observe_untypeable(wide, untypeable, kinds)
    return wide.select(
        "snapshot_id",
        "timestamp",
        "quote_asset",
        "total_value",
        "cash",
        "base_value",
        *[typed(F.col(f"_{name}"), RETURN).alias(name) for name in RETURNS[:2]],
        "running_peak",
        typed(F.col("_drawdown"), RETURN).alias("drawdown"),
        F.lit(built_at).cast(TimestampType()).alias("created_at"),
        "client_id",
        F.to_date("timestamp").alias("date"),
    )


def affected_by_dates(
    snapshots: DataFrame, portfolio: DataFrame, dates: Sequence[date]
) -> DataFrame:
    """Return each touched client's snapshots from its earliest touched date on."""
    touched = (
        portfolio.filter(F.col("date").isin(list(dates)))
        .groupBy("client_id")
        .agg(F.min("date").alias("_from"))
    )
    return (
        snapshots.join(touched, "client_id").filter(F.col("date") >= F.col("_from")).drop("_from")
    )


def expected_snapshots(portfolio: DataFrame, snapshots: DataFrame) -> int:
    """Return how many distinct bronze snapshots fall in ``snapshots``' partitions."""
    partitions = snapshots.select(*PARTITIONS).distinct()
    ids = portfolio.select("client_id", F.to_date("timestamp").alias("date"), "id").distinct()
    return ids.join(partitions, list(PARTITIONS), "left_semi").count()


def quality_checks(expected_rows: int, untypeable: Observation | None = None) -> list[Check]:
    """Return the contract of silver.portfolio_snapshots (``untypeable``: returns nulled)."""
    observed: list[Check] = [] if untypeable is None else [UntypeableCheck(untypeable, RETURNS)]
    return [
        not_null("client_id"),
        not_null("timestamp"),
        not_null("total_value"),
        UniqueCheck("snapshot_id_unique", ("snapshot_id",)),
        # Two valuations of one client at one instant (a source that wrote twice): both
        # are kept, ordered by snapshot id, and flagged, since one of them is wrong.
        UniqueCheck("one_snapshot_per_client_and_time", ("client_id", "timestamp"), False),
        RowCheck(
            "drawdown_between_0_and_1",
            (F.col("drawdown") < 0) | (F.col("drawdown") > 1),
            "rows outside [0, 1]",
            stat=F.col("drawdown"),
            stat_label="max drawdown",
        ),
        RowCheck("total_value_not_negative", F.col("total_value") < 0, "negative total values"),
        CountCheck("row_count_matches_bronze", expected_rows, "bronze snapshots"),
        RowCheck(
            "cash_within_total_value",
            F.col("cash") > F.col("total_value"),
            "snapshots with more cash than total value",
            critical=False,
        ),
        *observed,
    ]


# --- entry point -------------------------------------------------------------------------


def run(spark: SparkSession, config: JobConfig, report: Report) -> None:
    """Rebuild the partitions of silver.portfolio_snapshots that the run's scope covers."""
    assert config.output
    portfolio = read_dataset(spark, config.lake_uri, BRONZE_PORTFOLIO)
    report.inputs["bronze.portfolio"] = portfolio.count()
    current = read_dataset(spark, config.lake_uri, LAYOUT.renamed(config.output))
    seeds = seed_rows(current, portfolio)

    untypeable = Observation()
    snapshots = build_portfolio_snapshots(portfolio, datetime.now(UTC), seeds, untypeable)
    if config.mode == "dates":
        snapshots = affected_by_dates(snapshots, portfolio, config.dates)
    elif config.mode == "range":
        snapshots = snapshots.filter(F.col("date").between(config.start_date, config.end_date))
    snapshots = snapshots.persist()
    try:
        checks = quality_checks(expected_snapshots(portfolio, snapshots), untypeable)
        output = Output(config.output, OUTPUT.partition_by, OUTPUT.sort_by)
        write_checked(spark, config, snapshots, output, checks, report)
    finally:
        snapshots.unpersist()
