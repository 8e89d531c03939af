"""Where each lake dataset keeps its partitions: keys parsed into datasets and partitions.

Pure functions over keys (no Django, no storage), shared by retention and monitoring:

    bronze/<name>/[k=v/...]date=D/file            bronze.<name>
    quarantine/<name>/[k=v/...]date=D/file        quarantine.<name>
    silver/<name>/[k=v/...]date=D/file            silver.<name>
    gold/features/<name>/[k=v/...]date=D/file     gold.features.<name>
    gold/training_sets/<name>/<vX.Y.Z>/<split>/date=D/file, .../<vX.Y.Z>/features.json
                                                  gold.training_sets.<name>
    _staging/run-<id>/...                         staging of run <id>
"""

import re
from dataclasses import dataclass
from datetime import date

VERSION = re.compile(r"^v\d+\.\d+\.\d+$")
STAGING_RUN = re.compile(r"^run-(\d+)$")


@dataclass(frozen=True)
class Partition:
    """One partition directory of one dataset (for a training set: of one version)."""

    dataset: str  # dotted name, e.g. bronze.events
    layer: str  # bronze, silver or gold (quarantine counts as bronze)
    prefix: str  # key of the partition directory
    date: date | None  # None for a partition without (or with an unknown) date
    version: str = ""  # training sets only
    split: str = ""  # training sets only: train or test


@dataclass(frozen=True)
class Located:
    """A key placed in its partition; `name` is the rest of the key (`_metadata/x.json`)."""

    partition: Partition
    name: str

    @property
    def is_data(self) -> bool:
        """Tell whether the key is a visible Parquet data file (not metadata, not hidden)."""
        parts = self.name.split("/")
        return self.name.endswith(".parquet") and not any(p.startswith(("_", ".")) for p in parts)


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _partition_dirs(parts: list[str]) -> int:
    """Return how many leading segments of `parts` are `key=value` partition directories."""
    n = 0
    while n < len(parts) - 1 and "=" in parts[n] and not parts[n].startswith(("_", ".")):
        n += 1
    return n


def locate(key: str) -> Located | None:
    """Return the dataset partition `key` lies in, or None for keys outside any dataset."""
    parts = key.split("/")
    if len(parts) < 3 or any(p.startswith(".") for p in parts[:-1]):
        return None
    top = parts[0]
    if top in ("bronze", "quarantine", "silver"):
        root, dataset = 2, f"{top}.{parts[1]}"
        layer = "bronze" if top == "quarantine" else top
    elif top == "gold" and parts[1] == "features" and len(parts) >= 4:
        root, dataset, layer = 3, f"gold.features.{parts[2]}", "gold"
    elif top == "gold" and parts[1] == "training_sets" and len(parts) >= 5:
        dataset, version = f"gold.training_sets.{parts[2]}", parts[3]
        if not VERSION.match(version):
            return None
        rest = parts[4:]
        if len(rest) >= 3 and rest[1].startswith("date="):
            prefix = "/".join(parts[:6])
            part = Partition(dataset, "gold", prefix, _date(rest[1][5:]), version, rest[0])
            return Located(part, "/".join(rest[2:]))
        prefix = "/".join(parts[:4])
        return Located(Partition(dataset, "gold", prefix, None, version), "/".join(rest))
    else:
        return None
    n = _partition_dirs(parts[root:])
    if n == 0:
        return None
    dirs = parts[root : root + n]
    dates = [_date(d[5:]) for d in dirs if d.startswith("date=")]
    prefix = "/".join(parts[: root + n])
    return Located(
        Partition(dataset, layer, prefix, dates[0] if dates else None), "/".join(parts[root + n :])
    )


def staging_run(key: str) -> tuple[str, int] | None:
    """Return (staging prefix, run id) when `key` lies in a run's staging directory."""
    parts = key.split("/")
    if len(parts) >= 3 and parts[0] == "_staging":
        match = STAGING_RUN.match(parts[1])
        if match:
            return f"_staging/{parts[1]}", int(match.group(1))
    return None
