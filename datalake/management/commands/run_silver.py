"""Build the silver datasets with Spark (daily: only what new bronze files affect)."""

from django.core.management.base import BaseCommand, CommandError

from datalake.management.arguments import positive_seconds
from datalake.models import JobRun
from datalake.silver import SILVER_JOBS, run_silver
from datalake.spark.runner import SparkJobFailed
from datalake.spark.submit import SparkSubmitNotFound
from datalake.storage.base import StorageError


class Command(BaseCommand):
    help = "Build silver datasets with spark-submit; every run is recorded in the job history."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--job", action="append", choices=sorted(SILVER_JOBS), dest="jobs",
            help="silver dataset to build (repeatable; default: all, in dependency order)",
        )  # fmt: skip
        parser.add_argument("--full", action="store_true", help="rebuild everything")
        parser.add_argument(
            "--timeout", type=positive_seconds, help="kill a job after this many seconds"
        )

    def handle(self, *args, **options) -> None:
        jobs = [name for name in SILVER_JOBS if name in (options["jobs"] or SILVER_JOBS)]
        for name in jobs:
            self.stdout.write(f"{name}: ...")
            try:
                run = run_silver(name, full=options["full"], timeout=options["timeout"])
            except SparkSubmitNotFound as exc:
                raise CommandError(str(exc)) from exc
            except (SparkJobFailed, StorageError) as exc:
                raise CommandError(f"{name} failed: {exc}") from exc
            if run.status == JobRun.Status.SKIPPED:
                self.stdout.write(f"{name}: skipped — {run.error}")
            else:
                self.stdout.write(
                    f"{name}: {run.status} — {run.rows_in} rows in, {run.rows_out} rows out,"
                    f" {run.duration.total_seconds():.1f}s (run {run.pk}, log {run.log_file})"
                )
