"""The command line of ``spark_jobs/main.py`` and the frozen config it becomes.

Pure module (no pyspark): the Django side builds exactly this command line::

    main.py <job> --lake-uri URI --run-id N --result-file PATH
            [--dates D1,D2,...] [--new-files KEY,KEY,...] [--start-date D --end-date D]
            [--output NAME] [--overwrite] [--seconds S]
            [--version vX.Y.Z] [--as-of TS] [--test-from D | --test-fraction F]
            [--embargo DURATION] [--input-runs NAME=ID,...] [--target-uri URI]   (gold)
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

#: Jobs and the dataset each one writes by default (None: writes nothing).
JOBS: dict[str, str | None] = {
    "silver.stop_executions": "silver.stop_executions",
    "silver.operations": "silver.operations",
    "silver.portfolio_snapshots": "silver.portfolio_snapshots",
    "gold.training_sets.stop_outcome": "gold.training_sets.stop_outcome",
    "gold.training_sets.slippage_prediction": "gold.training_sets.slippage_prediction",
    "gold.features.stop_execution_features": "gold.features.stop_execution_features",
    "gold.features.parity": None,
    "diagnostics.fail": None,
    "diagnostics.sleep": None,
}
GOLD_ONLY = (
    "version",
    "as_of",
    "test_from",
    "test_fraction",
    "embargo",
    "input_runs",
    "target_uri",
    "samples",
)
_VERSION = re.compile(r"^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
_DURATION = re.compile(r"^(\d+)\s*(s|m|min|h|d)?$")
_UNIT_SECONDS = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}

_DATASET_NAME = re.compile(r"^(bronze|silver|gold)\.([a-z][a-z0-9_]*)$")
_FILE_KEY = re.compile(r"^bronze/[a-z][a-z0-9_]*/(?:[a-z_]+=[^/]+/)+[^/]+\.parquet$")


class UsageError(ValueError):
    """Raised for a command line the jobs refuse (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


@dataclass(frozen=True)
class JobConfig:
    """What one run of one job should do."""

    job: str
    lake_uri: str
    run_id: str
    result_file: str | None = None
    dates: tuple[date, ...] = ()
    new_files: tuple[str, ...] = ()  # lake keys of the bronze files behind ``dates``
    start_date: date | None = None
    end_date: date | None = None
    output: str | None = None
    overwrite: bool = False
    seconds: float = 0.0
    # Gold training sets only.
    version: str | None = None
    as_of: datetime | None = None
    test_from: date | None = None
    test_fraction: float | None = None
    embargo_seconds: int | None = None
    input_runs: tuple[tuple[str, str], ...] = ()  # (dataset, JobRun id) that wrote the inputs
    target_uri: str | None = None  # a scratch root to build into instead of the lake
    samples: int | None = None  # gold.features.parity: how many (client, symbol) to check

    @property
    def mode(self) -> str:
        """Return ``dates`` (incremental), ``range`` (backfill) or ``full`` (rebuild)."""
        if self.dates:
            return "dates"
        if self.start_date is not None:
            return "range"
        return "full"

    @property
    def output_layer(self) -> str:
        return (self.output or "").split(".", 1)[0]

    @property
    def output_name(self) -> str:
        return (self.output or "").split(".", 1)[-1]

    def describe_scope(self) -> str:
        """Return a one-line description of which partitions the run recomputes."""
        if self.mode == "dates":
            files = f" ({len(self.new_files)} new files)" if self.new_files else ""
            return "dates " + ",".join(d.isoformat() for d in self.dates) + files
        if self.mode == "range":
            return f"dates {self.start_date} .. {self.end_date}"
        return "full rebuild"


def parse_date(text: str) -> date:
    """Return the ``YYYY-MM-DD`` date in ``text``, or raise UsageError."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"not a date (YYYY-MM-DD): {text!r}") from None


def parse_file_keys(text: str) -> tuple[str, ...]:
    """Return the bronze file keys in ``text`` (comma-separated), or raise UsageError."""
    keys = tuple(sorted({k.strip() for k in text.split(",") if k.strip()}))
    if not keys:
        raise UsageError("--new-files is empty")
    for key in keys:
        if not _FILE_KEY.match(key):
            raise UsageError(
                f"--new-files: not a bronze file key (bronze/<name>/<col>=<v>/....parquet): {key!r}"
            )
    return keys


def parse_version(text: str) -> tuple[int, int, int]:
    """Return (major, minor, patch) of ``vMAJOR.MINOR.PATCH``, or raise UsageError."""
    match = _VERSION.match(text.strip())
    if not match:
        raise UsageError(f"not a version (vMAJOR.MINOR.PATCH): {text!r}")
    return int(match[1]), int(match[2]), int(match[3])


def parse_duration(text: str) -> int:
    """Return the seconds of ``90``, ``90s``, ``30m``, ``1h`` or ``2d``, or raise UsageError."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise UsageError(f"not a duration (e.g. 3600, 30m, 1h, 2d): {text!r}")
    return int(match[1]) * _UNIT_SECONDS[match[2]]


def parse_timestamp(text: str) -> datetime:
    """Return the UTC instant of an ISO date or date-time (a naive one is UTC)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"not an ISO timestamp (2024-12-27T12:00:00Z): {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_input_runs(text: str) -> tuple[tuple[str, str], ...]:
    """Return the (dataset, run id) pairs of ``silver.stop_executions=12,bronze.orders=7``."""
    pairs = []
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, _, run = item.partition("=")
        if not _DATASET_NAME.match(name) or not re.fullmatch(r"[0-9]+", run):
            raise UsageError(f"--input-runs: expected dataset=run_id, got {item!r}")
        pairs.append((name, run))
    return tuple(sorted(pairs))


def date_span(first: date, last: date) -> list[date]:
    """Return every date from ``first`` to ``last``, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def lake_root(uri: str) -> str:
    """Return the lake URI as Hadoop wants it: ``file:///abs/dir`` or ``s3a://bucket/prefix``.

    ``s3://`` is accepted and read as ``s3a://`` (the connector Spark ships with).
    """
    uri = uri.strip()
    if not uri:
        raise UsageError("--lake-uri is empty")
    if uri.startswith("s3://"):
        uri = "s3a://" + uri[len("s3://") :]
    if "://" in uri:
        return uri.rstrip("/")
    if uri.startswith("file:"):
        uri = uri[len("file:") :]
    return "file://" + str(Path(uri).expanduser().resolve())


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``main.py`` (errors raise UsageError)."""
    parser = _Parser(prog="spark_jobs/main.py", description="Run one lake job.")
    parser.add_argument("job", help=f"one of: {', '.join(JOBS)}")
    parser.add_argument("--lake-uri", required=True, help="lake root: directory or s3a://...")
    parser.add_argument("--run-id", required=True, help="JobRun id (names the staging dir)")
    parser.add_argument("--result-file", help="local path of the result JSON")
    parser.add_argument("--dates", help="incremental: bronze dates that received new files")
    parser.add_argument(
        "--new-files", help="with --dates: the new bronze files (lake keys), to narrow the scope"
    )
    parser.add_argument("--start-date", help="backfill: first silver date (inclusive)")
    parser.add_argument("--end-date", help="backfill: last silver date (inclusive)")
    parser.add_argument("--output", help="output dataset, e.g. silver.stop_executions_v2")
    parser.add_argument("--overwrite", action="store_true", help="replace existing partitions")
    parser.add_argument("--seconds", type=float, default=0.0, help="diagnostics.sleep only")
    gold = parser.add_argument_group("gold training sets")
    gold.add_argument("--version", help="vMAJOR.MINOR.PATCH (default: the next minor version)")
    gold.add_argument("--as-of", help="cutoff: only outcomes known before it (default: now)")
    gold.add_argument("--test-from", help="test split: samples triggered from this UTC date on")
    gold.add_argument("--test-fraction", type=float, help="test split: the latest fraction")
    gold.add_argument("--embargo", help="gap before the test split (default 1h): 30m, 1h, 2d")
    gold.add_argument("--input-runs", help="JobRuns that wrote the inputs: name=id,...")
    gold.add_argument("--target-uri", help="build into this root instead of the lake (scratch)")
    gold.add_argument("--samples", type=int, help="gold.features.parity: pairs to recompute")
    return parser


def parse_args(argv: list[str]) -> JobConfig:
    """Return the JobConfig for ``argv``, or raise UsageError saying what is wrong."""
    args = build_parser().parse_args(argv)
    if args.job not in JOBS:
        raise UsageError(f"unknown job {args.job!r}; known: {', '.join(JOBS)}")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", args.run_id):
        raise UsageError(f"--run-id must be a plain identifier, got {args.run_id!r}")
    dates: tuple[date, ...] = ()
    if args.dates:
        dates = tuple(sorted({parse_date(d) for d in args.dates.split(",") if d.strip()}))
        if not dates:
            raise UsageError("--dates is empty")
    new_files = parse_file_keys(args.new_files) if args.new_files is not None else ()
    if new_files and not dates:
        raise UsageError("--new-files goes with --dates (the dates of those files)")
    start = parse_date(args.start_date) if args.start_date else None
    end = parse_date(args.end_date) if args.end_date else None
    if (start is None) != (end is None):
        raise UsageError("--start-date and --end-date go together")
    if start and end and start > end:
        raise UsageError(f"--start-date {start} is after --end-date {end}")
    if dates and start:
        raise UsageError("give --dates (incremental) or --start-date/--end-date, not both")
    if args.seconds < 0:
        raise UsageError("--seconds must not be negative")
    gold = _gold_options(args)
    return JobConfig(
        job=args.job,
        lake_uri=lake_root(args.lake_uri),
        run_id=args.run_id,
        result_file=args.result_file,
        dates=dates,
        new_files=new_files,
        start_date=start,
        end_date=end,
        output=resolve_output(args.job, args.output),
        overwrite=args.overwrite,
        seconds=args.seconds,
        **gold,
    )


def _gold_options(args: argparse.Namespace) -> dict:
    """Return the gold options of ``args`` as JobConfig fields (refused for other jobs)."""
    given = [name for name in GOLD_ONLY if getattr(args, name) is not None]
    if not args.job.startswith("gold."):
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UsageError(f"{flags}: only for gold jobs")
        return {}
    if args.test_from is not None and args.test_fraction is not None:
        raise UsageError("give --test-from or --test-fraction, not both")
    if args.test_fraction is not None and not 0 < args.test_fraction < 1:
        raise UsageError(f"--test-fraction must lie between 0 and 1, got {args.test_fraction}")
    if args.version is not None:
        parse_version(args.version)
    if args.samples is not None and args.samples < 1:
        raise UsageError(f"--samples must be at least 1, got {args.samples}")
    return {
        "version": args.version.strip() if args.version else None,
        "as_of": parse_timestamp(args.as_of) if args.as_of else None,
        "test_from": parse_date(args.test_from) if args.test_from else None,
        "test_fraction": args.test_fraction,
        "embargo_seconds": parse_duration(args.embargo) if args.embargo else None,
        "input_runs": parse_input_runs(args.input_runs) if args.input_runs else (),
        "target_uri": lake_root(args.target_uri) if args.target_uri else None,
        "samples": args.samples,
    }


def resolve_output(job: str, output: str | None) -> str | None:
    """Return the dataset the job writes: its own, or a suffixed variant of it.

    ``silver.stop_executions_v2`` is accepted for ``silver.stop_executions``; another job's
    dataset is refused so that a typo can never overwrite it.
    """
    default = JOBS[job]
    if output is None or default is None:
        return default
    match = _DATASET_NAME.match(output)
    if not match:
        raise UsageError(f"--output must look like silver.name_suffix, got {output!r}")
    if output != default and not output.startswith(default + "_"):
        raise UsageError(f"--output {output!r} is not {default} or a suffixed variant of it")
    return output
