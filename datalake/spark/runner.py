"""Run a Spark job with spark-submit and record it on its JobRun."""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from datalake.conf import app_settings
from datalake.models import JobRun, QualityCheck
from datalake.redaction import redact_text
from datalake.spark.classdata import ClassArchive, class_archive
from datalake.spark.submit import (
    SparkSubmitNotFound,
    SubmitConfig,
    build_command,
    default_spark_submit,
    lake_conf,
    package_jobs,
)
from datalake.storage import get_storage

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 40


class SparkJobFailed(Exception):
    """A Spark job exited non-zero, timed out, or failed its quality checks."""


@dataclass
class SparkOutcome:
    """What came back from spark-submit."""

    returncode: int
    result: dict = field(default_factory=dict)
    app_id: str = ""
    log_file: str = ""
    log_tail: list[str] = field(default_factory=list)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def submit_config() -> SubmitConfig:
    """Return the spark-submit settings; raise SparkSubmitNotFound if there is none to run."""
    return SubmitConfig(
        spark_submit=default_spark_submit(app_settings.SPARK_SUBMIT),
        master=app_settings.SPARK_MASTER,
        deploy_mode=app_settings.SPARK_DEPLOY_MODE,
        driver_memory=app_settings.SPARK_DRIVER_MEMORY,
        executor_memory=app_settings.SPARK_EXECUTOR_MEMORY,
        conf=dict(app_settings.SPARK_CONF),
    )


def lake_uri() -> str:
    """Return the lake root as Spark addresses it (a path, or s3a://bucket/prefix)."""
    return get_storage().uri()


def spark_dir() -> Path:
    return Path(app_settings.WORK_DIR) / "spark"


def driver_class_archive(config: SubmitConfig) -> ClassArchive | None:
    """Return the driver's class-data archive, unless it is off or the driver runs
    elsewhere (cluster deploy mode)."""
    directory = app_settings.SPARK_CLASS_ARCHIVE_DIR
    if directory == "off" or config.deploy_mode != "client":
        return None
    return class_archive(Path(directory) if directory else spark_dir() / "classes")


def run_script(
    script: str,
    args: list[str],
    *,
    run: JobRun,
    timeout: float | None = None,
    stdout_sink: Callable[[str], None] | None = None,
    java_options: str = "",
) -> SparkOutcome:
    """spark-submit `spark_jobs/<script>` with `args`; stream its log to a file.

    With `stdout_sink`, the job's stdout goes there (query results) and only stderr to the
    log; otherwise both go to the log. The Spark application id is saved on `run` as soon
    as the job prints it. A timeout kills the whole process group.
    """
    jobs_dir = Path(settings.BASE_DIR) / "spark_jobs"
    work = spark_dir()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    log_path = work / "logs" / f"run-{run.pk}.log"
    storage_conf = lake_conf(
        lake_uri(),
        endpoint_url=app_settings.S3_ENDPOINT_URL,
        addressing_style=app_settings.S3_ADDRESSING_STYLE,
    )
    try:
        config = submit_config()
    except SparkSubmitNotFound as exc:
        run.fail(str(exc))
        raise
    archive = driver_class_archive(config)
    if archive is not None and archive.partial is not None:
        logger.info("no class-data archive yet: this run writes %s at its exit", archive.path)
    command = build_command(
        config,
        main=str(jobs_dir / script),
        args=args,
        py_files=str(package_jobs(jobs_dir, work / "packages")),
        app_name=f"robson-{run.job_name}-{run.pk}",
        extra_conf=storage_conf,
        driver_java_options=" ".join(
            o for o in (archive and archive.java_option, java_options) if o
        ),
    )
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    run.log_file = str(log_path)
    run.parameters = {**run.parameters, "spark_submit": command[1:11]}
    run.save(update_fields=["log_file", "parameters"])
    logger.info("spark-submit %s (run %s), log in %s", script, run.pk, log_path)

    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    app_id: list[str] = []
    with log_path.open("w") as log:
        try:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if stdout_sink else subprocess.STDOUT,
                env=env,
                text=True,
                start_new_session=True,
            )
        except OSError as exc:  # removed or made unexecutable since it was found
            if archive is not None:
                archive.finish(succeeded=False)
            run.fail(f"cannot run {command[0]}: {exc.strerror}")
            raise SparkSubmitNotFound(run.error) from None
        # Its own session, so its group id is its pid: cancel kills the whole group.
        run.process_group = process.pid
        run.save(update_fields=["process_group"])

        def pump(stream, sink) -> None:
            for line in stream:
                if line.startswith("APP_ID="):
                    app_id.append(line.strip().removeprefix("APP_ID="))
                sink(line)

        def to_log(line: str) -> None:
            log.write(line)
            log.flush()
            tail.append(line.rstrip("\n"))

        readers = [threading.Thread(target=pump, args=(process.stdout, stdout_sink or to_log))]
        if stdout_sink:
            readers.append(threading.Thread(target=pump, args=(process.stderr, to_log)))
        for reader in readers:
            reader.daemon = True
            reader.start()
        deadline = time.monotonic() + timeout if timeout else None
        timed_out = False
        saved_app_id = ""
        try:
            with _terminate_raises():
                while process.poll() is None:
                    if app_id and not saved_app_id:
                        saved_app_id = run.spark_app_id = app_id[0]
                        run.save(update_fields=["spark_app_id"])
                    if deadline and time.monotonic() > deadline:
                        timed_out = True
                        os.killpg(process.pid, signal.SIGKILL)
                        process.wait()
                        break
                    time.sleep(0.2)
        except BaseException as exc:
            # Interrupted (Ctrl-C, SIGTERM, an error here): never leave Spark running
            # behind, nor the run RUNNING.
            _kill_group(process)
            if archive is not None:
                archive.finish(succeeded=False)
            run.fail(f"interrupted ({type(exc).__name__}); spark-submit killed")
            raise
        for reader in readers:
            reader.join(timeout=10)
    if archive is not None:
        archive.finish(succeeded=process.returncode == 0 and not timed_out)
    outcome = SparkOutcome(
        returncode=process.returncode,
        app_id=app_id[0] if app_id else "",
        log_file=str(log_path),
        log_tail=list(tail),
        timed_out=timed_out,
    )
    return outcome


@contextmanager
def _terminate_raises() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while a command waits for Spark (main thread only,
    and only where nobody else handles SIGTERM: a Celery worker keeps its own)."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _kill_group(process: subprocess.Popen) -> None:
    """Kill spark-submit's whole process group (its JVM and Python workers)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_job(
    job: str,
    job_args: list[str],
    *,
    run: JobRun,
    timeout: float | None = None,
    java_options: str = "",
) -> SparkOutcome:
    """Run the silver/gold job `job` through spark_jobs/main.py and record the outcome.

    `java_options` are added to the driver JVM's (see SPARK_DAILY_JAVA_OPTIONS).
    """
    result_file = spark_dir() / f"run-{run.pk}-result.json"
    result_file.unlink(missing_ok=True)
    args = [job, "--lake-uri", lake_uri(), "--run-id", str(run.pk),
            "--result-file", str(result_file), *job_args]  # fmt: skip
    outcome = run_script("main.py", args, run=run, timeout=timeout, java_options=java_options)
    if result_file.exists():
        outcome.result = json.loads(result_file.read_text())
    record(run, outcome, timeout)
    return outcome


def record(run: JobRun, outcome: SparkOutcome, timeout: float | None) -> None:
    """Write the outcome on the run: status, rows, checks, error."""
    result = outcome.result
    run.spark_app_id = outcome.app_id or result.get("app_id", "") or run.spark_app_id
    run.rows_in = sum(result.get("inputs", {}).values())
    run.rows_out = sum(result.get("outputs", {}).values())
    run.files_written = int(result.get("files", 0))
    run.bytes_written = int(result.get("bytes", 0))
    QualityCheck.objects.bulk_create(
        QualityCheck(
            run=run,
            dataset=c["dataset"],
            partition=c.get("partition", ""),
            name=c["check"],
            passed=bool(c["passed"]),
            critical=bool(c.get("critical", True)),
            observed=str(c.get("observed", ""))[:500],
        )
        for c in result.get("checks", [])
    )
    if outcome.ok:
        run.succeed()
        return
    secrets = app_settings.SECRET_VALUES
    tail = redact_text("\n".join(outcome.log_tail[-15:]), secrets)
    if outcome.timed_out:
        error = f"timed out after {timeout:g} s and was killed"
    elif result.get("status") == "checks_failed":
        failed = [
            c for c in result.get("checks", []) if not c["passed"] and c.get("critical", True)
        ]
        names = ", ".join(sorted({f"{c['check']} ({c.get('partition', '')})" for c in failed}))
        error = f"critical quality checks failed, nothing published: {names}"
    else:
        error = result.get("error") or f"spark-submit exited with code {outcome.returncode}"
    run.fail(f"{error}\n--- last log lines ({outcome.log_file}) ---\n{tail}")
