"""The result of a run, written as JSON to ``--result-file`` for the Django side."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

SUCCEEDED = "succeeded"
FAILED = "failed"
CHECKS_FAILED = "checks_failed"


class Refused(Exception):
    """Raised when a run would replace existing partitions without --overwrite (exit 2)."""


class ChecksFailed(Exception):
    """Raised when a critical quality check failed: nothing was published (exit 3)."""


@dataclass
class Report:
    """What a run read, wrote, checked and how long it took."""

    job: str
    status: str = FAILED
    app_id: str | None = None
    run_id: str | None = None
    output: str | None = None
    scope: str | None = None
    inputs: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)
    partitions: list[str] = field(default_factory=list)
    partition_rows: dict[str, int] = field(default_factory=dict)
    files: int = 0  # data files published
    bytes: int = 0  # their total size
    partition_files: dict[str, int] = field(default_factory=dict)
    partition_bytes: dict[str, int] = field(default_factory=dict)
    removed_partitions: list[str] = field(default_factory=list)
    published: bool = False
    checks: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # job-specific (a gold version...)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str) -> None:
        """Write the report to ``path`` atomically (a reader never sees half a file)."""
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".result-", dir=directory)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.as_dict(), handle, indent=2, default=str)
            handle.write("\n")
        os.replace(tmp, path)
