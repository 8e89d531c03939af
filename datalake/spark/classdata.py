"""A class-data-sharing archive for the driver JVM of spark-submit (Java's AppCDS).

A Spark driver loads and verifies thousands of classes before it runs anything, and again
on every spark-submit: seconds of a daily run's budget. Java 17 can dump the classes a
run loaded into an archive at exit (``-XX:ArchiveClassesAtExit``) and map that archive
into later JVMs (``-XX:SharedArchiveFile``), which then start and plan measurably faster.

The first run on a machine writes the archive (about 10 s more at its exit); it is
published with a rename only if that run succeeded, so a concurrent or killed run never
leaves half an archive. The archive is named after the pyspark version and the Java
binary, so an upgrade of either starts a new one. A JVM that cannot use an archive
(another JDK build, another classpath) ignores it and runs as if it had none.
"""

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path


@dataclass(frozen=True)
class ClassArchive:
    """The archive a run uses, or the temporary one it writes (then ``partial`` is set)."""

    path: Path
    partial: Path | None = None

    @property
    def java_option(self) -> str:
        if self.partial is not None:
            return f"-XX:ArchiveClassesAtExit={self.partial}"
        return f"-XX:SharedArchiveFile={self.path}"

    def finish(self, succeeded: bool) -> bool:
        """Publish the archive this run wrote if it succeeded; return whether it did."""
        if self.partial is None:
            return False
        if succeeded and self.partial.exists() and self.partial.stat().st_size > 0:
            self.partial.replace(self.path)
            return True
        self.partial.unlink(missing_ok=True)
        return False


def java_identity() -> str:
    """Return what identifies the JDK spark-submit runs: its java binary and that file's
    modification time (an upgrade replaces it)."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        return "no-java"
    real = Path(java).resolve()
    return f"{real}:{real.stat().st_mtime_ns}"


def class_archive(directory: Path) -> ClassArchive:
    """Return the archive to use under ``directory``, or the one to write if none exists."""
    key = hashlib.sha256(f"{version('pyspark')}|{java_identity()}".encode()).hexdigest()[:12]
    path = directory / f"driver-{key}.jsa"
    if path.exists():
        return ClassArchive(path)
    directory.mkdir(parents=True, exist_ok=True)
    return ClassArchive(path, directory / f".driver-{key}-{uuid.uuid4().hex[:8]}.jsa.tmp")
