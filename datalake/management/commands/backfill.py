"""Recompute a silver dataset for a date range from its bronze input."""

from django.core.management.base import BaseCommand, CommandError

from datalake.management.arguments import iso_date, positive_int, positive_seconds
from datalake.silver import PartitionsExist, UnknownDataset, backfill
from datalake.spark.runner import SparkJobFailed
from datalake.spark.submit import SparkSubmitNotFound
from datalake.storage.base import StorageError


class Command(BaseCommand):
    help = (
        "Recompute an output dataset for a date range from an input, e.g. --start-date "
        "2024-01-01 --end-date 2024-12-27 --input bronze.events "
        "--output silver.stop_executions_v2 --overwrite"
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--start-date", required=True, type=iso_date, help="first date (YYYY-MM-DD)"
        )
        parser.add_argument("--end-date", required=True, type=iso_date, help="last date, inclusive")
        parser.add_argument("--input", required=True, help="input dataset, e.g. bronze.events")
        parser.add_argument(
            "--output", required=True,
            help="output dataset, e.g. silver.stop_executions or silver.stop_executions_v2",
        )  # fmt: skip
        parser.add_argument("--overwrite", action="store_true", help="replace partitions")
        parser.add_argument(
            "--chunk-days", type=positive_int, default=7,
            help="at most this many dates with input per spark-submit",
        )  # fmt: skip
        parser.add_argument(
            "--timeout", type=positive_seconds, help="kill a chunk after this many seconds"
        )

    def handle(self, *args, **options) -> None:
        start, end = options["start_date"], options["end_date"]
        try:
            run = backfill(
                start=start,
                end=end,
                input_name=options["input"],
                output=options["output"],
                overwrite=options["overwrite"],
                chunk_days=options["chunk_days"],
                timeout=options["timeout"],
                progress=self.stdout.write,
            )
        except (UnknownDataset, ValueError, PartitionsExist) as exc:
            raise CommandError(str(exc)) from exc
        except SparkSubmitNotFound as exc:
            raise CommandError(str(exc)) from exc
        except (SparkJobFailed, StorageError) as exc:
            raise CommandError(f"backfill failed: {exc}") from exc
        self.stdout.write(
            f"backfill {run.status}: {options['output']} {start}..{end},"
            f" {run.rows_out} rows (run {run.pk})"
        )
