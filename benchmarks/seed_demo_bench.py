"""Benchmark ``seed_demo`` and print the figures.

    python -m benchmarks.seed_demo_bench [--events N] [--flatness]

Runs ``manage.py seed_demo --reset --events N --no-progress`` (default one million
events) against the database of DATABASE_URL -- it empties the source tables there --
in a subprocess, and prints the rows written per table, StopEvents per second, the
total seconds and the peak RSS of the command (its generator process included). With
``--flatness`` it first runs a tenth of the events, to compare peak memory. Exits 1
when a million events or more took longer than the two-minute target.
"""

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS_PER_MILLION = 120.0


def run(events: int) -> tuple[float, float, dict[str, int]]:
    """Run seed_demo once; return (wall seconds, peak RSS in MB, rows per table)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo", "--reset", "--events", str(events),
         "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"seed_demo failed:\n{result.stdout}{result.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rows = {
        name: int(count.replace(",", ""))
        for name, count in re.findall(r"^  ([a-z ]+?) +([\d,]+)$", result.stdout, re.MULTILINE)
    }
    # ru_maxrss of children is the largest of any child so far: a smaller run goes first.
    return seconds, max(peak, before) / 1024, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="StopEvents to create")
    parser.add_argument(
        "--flatness", action="store_true", help="first run a tenth of the events, compare RSS"
    )
    args = parser.parse_args(argv)
    database = os.environ.get("DATABASE_URL", "sqlite (default)")
    print(f"seed_demo --reset --events {args.events:,} --no-progress  on {database}")
    if args.flatness:
        small = max(1, args.events // 10)
        seconds, peak, _ = run(small)
        print(f"  {small:>12,} events: {seconds:8.1f} s, peak RSS {peak:7.0f} MB")
    seconds, peak, rows = run(args.events)
    for name, count in rows.items():
        print(f"  {name:<20}{count:>12,}")
    events = rows.get("stop events", 0)
    print(f"  {args.events:>12,} events: {seconds:8.1f} s, peak RSS {peak:7.0f} MB")
    print(f"StopEvents/s: {events / seconds:,.0f}")
    print(f"rows/s:       {sum(rows.values()) / seconds:,.0f}")
    print(f"total s:      {seconds:.1f}")
    if args.events >= 1_000_000:
        budget = TARGET_SECONDS_PER_MILLION * args.events / 1_000_000
        verdict = "PASS" if seconds <= budget else "FAIL"
        print(f"{verdict}: {seconds:.1f} s for {args.events:,} events (target {budget:.0f} s)")
        return 0 if verdict == "PASS" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
