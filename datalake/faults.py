"""Fault injection for the crash tests: kill this process at a named point.

Only active when the DATALAKE_FAULT_POINT environment variable names the point (set by
the tests on a subprocess); otherwise a no-op.
"""

import os
import signal

POINTS = ("before_plan", "planned", "mid_file", "after_publish", "after_commit")


def crash_point(name: str) -> None:
    """SIGKILL this process if DATALAKE_FAULT_POINT is `name` (test hook)."""
    if os.environ.get("DATALAKE_FAULT_POINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def register_s3_hooks(client) -> None:
    """Crash at "mid_file" while an upload request is on the wire (test hook)."""
    if os.environ.get("DATALAKE_FAULT_POINT") == "mid_file":
        for operation in ("PutObject", "UploadPart", "CompleteMultipartUpload"):
            client.meta.events.register(
                f"before-send.s3.{operation}", lambda **_: crash_point("mid_file")
            )
