"""Build spark-submit command lines: pure functions, no Django, no pyspark."""

import hashlib
import importlib.util
import os
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


class SparkSubmitNotFound(Exception):
    """No spark-submit to run: the configured one is missing, or none was found."""


def pyspark_spark_submit() -> Path | None:
    """Return the spark-submit that ships in the installed pyspark wheel, if any."""
    try:
        spec = importlib.util.find_spec("pyspark")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "spark-submit"


def find_spark_submit(
    configured: str | None, *, bundled: Path | None, interpreter: str, path: str | None
) -> str:
    """Return the spark-submit to run.

    `configured` (the SPARK_SUBMIT setting) wins: a path, or a name looked up on `path`.
    Otherwise the one in the pyspark wheel (`bundled`, matching the installed pyspark),
    then the one next to `interpreter` (a virtualenv's bin, even when not activated), then
    `spark-submit` on `path`. Raise SparkSubmitNotFound saying what was tried.
    """
    if configured:
        found = shutil.which(configured, path=path) if os.sep not in configured else configured
        if found and os.path.isfile(found) and os.access(found, os.X_OK):
            return found
        raise SparkSubmitNotFound(
            f"SPARK_SUBMIT={configured} is not an executable file"
            + ("" if os.sep in configured else " on PATH")
        )
    candidates = [bundled, Path(interpreter).parent / "spark-submit"]
    for candidate in candidates:
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which("spark-submit", path=path)
    if on_path:
        return on_path
    raise SparkSubmitNotFound(
        f"no spark-submit found: pyspark is not installed for {interpreter} and"
        " spark-submit is not on PATH; install the requirements or set SPARK_SUBMIT"
        " to the spark-submit to use"
    )


def default_spark_submit(configured: str | None) -> str:
    """Return the spark-submit to run for this process (see `find_spark_submit`)."""
    return find_spark_submit(
        configured,
        bundled=pyspark_spark_submit(),
        interpreter=sys.executable,
        path=os.environ.get("PATH"),
    )


@dataclass(frozen=True)
class SubmitConfig:
    """Everything spark-submit needs that comes from settings."""

    spark_submit: str = "spark-submit"
    master: str = "local[*]"
    deploy_mode: str = "client"
    driver_memory: str = "2g"
    executor_memory: str = "2g"
    conf: dict[str, str] = field(default_factory=dict)


DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
}


def lake_conf(lake_uri: str, *, endpoint_url: str | None, addressing_style: str) -> dict[str, str]:
    """Return the (non-secret) Hadoop settings for reaching the lake.

    Credentials are never put here: S3A's default provider chain reads
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the job's environment.
    """
    if not lake_uri.startswith("s3a://"):
        return {}
    conf = {"spark.hadoop.fs.s3a.path.style.access": str(addressing_style == "path").lower()}
    if endpoint_url:
        conf["spark.hadoop.fs.s3a.endpoint"] = endpoint_url
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(
            endpoint_url.startswith("https://")
        ).lower()
    return conf


def build_command(
    config: SubmitConfig,
    *,
    main: str,
    args: list[str],
    py_files: str | None = None,
    app_name: str | None = None,
    extra_conf: dict[str, str] | None = None,
    driver_java_options: str = "",
) -> list[str]:
    """Return the spark-submit argv for running `main` with `args`.

    `driver_java_options` go before any the configuration already gives the driver.
    """
    command = [
        config.spark_submit,
        "--master", config.master,
        "--deploy-mode", config.deploy_mode,
        "--driver-memory", config.driver_memory,
        "--executor-memory", config.executor_memory,
    ]  # fmt: skip
    if app_name:
        command += ["--name", app_name]
    if py_files:
        command += ["--py-files", py_files]
    conf = {**BASE_CONF, **(extra_conf or {}), **config.conf}
    if driver_java_options:
        given = conf.get(DRIVER_JAVA_OPTIONS, "")
        conf[DRIVER_JAVA_OPTIONS] = f"{driver_java_options} {given}".strip()
    for key in sorted(conf):
        command += ["--conf", f"{key}={conf[key]}"]
    return [*command, main, *args]


def package_jobs(source_dir: Path, dest_dir: Path) -> Path:
    """Zip the `spark_jobs` package for --py-files; reuse the zip while sources are unchanged."""
    files = sorted(p for p in source_dir.rglob("*.py") if "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(source_dir)).encode())
        digest.update(path.read_bytes())
    target = dest_dir / f"{source_dir.name}-{digest.hexdigest()[:12]}.zip"
    if not target.exists():
        dest_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".zip.tmp")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, Path(source_dir.name) / path.relative_to(source_dir))
        partial.replace(target)
    return target
