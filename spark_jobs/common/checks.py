"""Data-quality checks run on what a job staged, before anything is published.

A check covers all the partitions a run recomputed (its ``partition`` is ``""``); when it
fails, ``observed`` names a few offending partitions. A failed *critical* check stops the
run from publishing anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from spark_jobs.common.lake import partition_path

EXAMPLES = 3  # offending partitions named in a failed check's observed value


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check, as written to the result JSON."""

    dataset: str
    partition: str
    check: str
    passed: bool
    observed: str
    critical: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RowCheck:
    """Fail when any row matches ``bad``; report the largest value of ``stat`` too."""

    name: str
    bad: Column
    noun: str = "bad rows"
    critical: bool = True
    stat: Column | None = None
    stat_label: str = ""


@dataclass(frozen=True)
class UniqueCheck:
    """Fail when two rows share the same ``columns``."""

    name: str
    columns: tuple[str, ...]
    critical: bool = True


@dataclass(frozen=True)
class CountCheck:
    """Fail when the number of rows differs from ``expected`` (reconciliation)."""

    name: str
    expected: int
    source: str
    critical: bool = True


@dataclass(frozen=True)
class UntypeableCheck:
    """Warn about values a job nulled (or rows it left out) because it could not type them.

    The counts come from ``observation``, filled by :func:`observe_untypeable` while the
    job computed its output: no pass of its own. ``kinds`` names what was counted.
    """

    observation: Observation
    kinds: tuple[str, ...]
    name: str = "untypeable_values"
    critical: bool = False


@dataclass(frozen=True)
class DisjointCheck:
    """Fail when a row's ``columns`` also occur in ``other`` (rows outside what is staged,
    e.g. those published in partitions the run does not rewrite).

    ``broadcast``: the staged keys are few (an increment), so ``other`` is scanned once
    against a hash set of them instead of being shuffled.
    """

    name: str
    columns: tuple[str, ...]
    other: DataFrame
    noun: str
    critical: bool = True
    broadcast: bool = False


@dataclass(frozen=True)
class TallyCheck:
    """Fail when ``found`` is not zero: something counted before staging (rows set aside)."""

    name: str
    found: int
    noun: str
    critical: bool = True


Check = RowCheck | UniqueCheck | CountCheck | UntypeableCheck | DisjointCheck | TallyCheck


def observe_untypeable(
    frame: DataFrame, observation: Observation, kinds: Mapping[str, tuple[Column, Column]]
) -> DataFrame:
    """Return ``frame`` counting, into ``observation``, its rows that match each kind.

    ``kinds`` maps a name to (untypeable: a condition, shown: the value as text, for an
    example). The frame must be computed once (a staging write, or a persist).
    """
    metrics = []
    for name, (bad, shown) in kinds.items():
        flagged = F.coalesce(bad, F.lit(False))
        metrics.append(F.count_if(flagged).alias(name))
        metrics.append(F.max(F.when(flagged, shown)).alias(f"{name}_example"))
    return frame.observe(observation, *metrics)


def _observed_metrics(observation: Observation) -> dict[str, Any] | None:
    """Return the metrics of ``observation``, or None if its frame computed no rows.

    ``Observation.get`` blocks until an action has run the frame, and fails when the
    optimizer pruned the observed part (a frame it proved empty); the JVM's future tells
    both apart without blocking.
    """
    future = observation._jo.future() if observation._jo is not None else None  # type: ignore[attr-defined]
    if future is None or not future.isCompleted():
        return None
    try:
        return observation.get
    except Exception:  # pruned: the observed rows were provably none
        return None


def untypeable_observed(check: UntypeableCheck) -> tuple[int, str]:
    """Return (count, observed text) of an :class:`UntypeableCheck` once its frame ran."""
    metrics = _observed_metrics(check.observation)
    if metrics is None:
        return 0, "0 untypeable values (no rows computed)"
    counts = {kind: int(metrics.get(kind) or 0) for kind in check.kinds}
    total = sum(counts.values())
    parts = [
        f"{kind} {n} (e.g. {metrics.get(f'{kind}_example')})" for kind, n in counts.items() if n
    ]
    return total, f"{total} untypeable values" + (": " + ", ".join(parts) if parts else "")


def not_null(column: str, critical: bool = True) -> RowCheck:
    """Return a check that ``column`` has no nulls."""
    return RowCheck(f"{column}_not_null", F.col(column).isNull(), "nulls", critical)


def run_checks(
    frame: DataFrame, dataset: str, checks: Sequence[Check], partition_by: Sequence[str]
) -> list[CheckResult]:
    """Return the result of every check on ``frame``."""
    return check_partitions(frame, dataset, checks, partition_by)[0]


def check_partitions(
    frame: DataFrame, dataset: str, checks: Sequence[Check], partition_by: Sequence[str]
) -> tuple[list[CheckResult], dict[str, int]]:
    """Return (the result of every check, rows per partition path) for ``frame``.

    The row checks and the partition counts come from one aggregation grouped by
    partition; a uniqueness check takes one more.
    """
    row_checks = [c for c in checks if isinstance(c, RowCheck)]
    aggregates = [F.count(F.lit(1)).alias("_rows")]
    for i, check in enumerate(row_checks):
        aggregates.append(F.count_if(F.coalesce(check.bad, F.lit(False))).alias(f"_bad{i}"))
        if check.stat is not None:
            aggregates.append(F.max(check.stat).alias(f"_stat{i}"))
    grouped = frame.groupBy(*partition_by) if partition_by else frame.groupBy()
    per_partition = grouped.agg(*aggregates).collect()
    partition_rows = {
        partition_path(partition_by, [row[c] for c in partition_by]): int(row["_rows"])
        for row in per_partition
    }
    rows = sum(partition_rows.values())

    def total(column: str) -> int:
        return sum(int(row[column]) for row in per_partition)

    def largest(column: str) -> Any:
        values = [row[column] for row in per_partition if row[column] is not None]
        return max(values) if values else None

    results: list[CheckResult] = []
    for check in checks:
        if isinstance(check, RowCheck):
            i = row_checks.index(check)
            bad = total(f"_bad{i}")
            observed = f"{bad} {check.noun}"
            if check.stat is not None:
                observed += f"; {check.stat_label} {_show(largest(f'_stat{i}'))}"
            if bad:
                observed += _examples(frame.filter(check.bad), partition_by)
            passed = bad == 0
        elif isinstance(check, UniqueCheck):
            counts = frame.groupBy(*check.columns).count()
            duplicated = counts.filter(F.col("count") > 1).select(*check.columns)
            dupes = duplicated.count()
            observed = f"{dupes} duplicated {'/'.join(check.columns)}"
            if dupes:
                observed += _examples(
                    frame.join(duplicated, list(check.columns), "left_semi"), partition_by
                )
            passed = dupes == 0
        elif isinstance(check, UntypeableCheck):
            bad, observed = untypeable_observed(check)
            passed = bad == 0
        elif isinstance(check, DisjointCheck):
            keys = frame.select(*check.columns).distinct()
            clashing = check.other.join(
                F.broadcast(keys) if check.broadcast else keys, list(check.columns), "left_semi"
            )
            found = clashing.select(*check.columns).distinct().count()
            observed = f"{found} {'/'.join(check.columns)} also in {check.noun}"
            if found:
                observed += _examples(clashing, partition_by)
            passed = found == 0
        elif isinstance(check, TallyCheck):
            observed, passed = f"{check.found} {check.noun}", check.found == 0
        else:
            observed = f"{rows} rows; {check.expected} expected from {check.source}"
            passed = rows == check.expected
        results.append(CheckResult(dataset, "", check.name, passed, observed, check.critical))
    return results, partition_rows


def _examples(rows: DataFrame, partition_by: Sequence[str]) -> str:
    if not partition_by:
        return ""
    found = rows.select(*partition_by).distinct().orderBy(*partition_by).limit(EXAMPLES).collect()
    return " in " + ", ".join(partition_path(partition_by, list(r)) for r in found)


def _show(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return "n/a" if value is None else str(value)


def failed_critical(results: Sequence[CheckResult]) -> list[CheckResult]:
    """Return the critical checks that failed."""
    return [r for r in results if r.critical and not r.passed]
