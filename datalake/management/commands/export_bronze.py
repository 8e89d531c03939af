"""Export source tables to bronze Parquet (incremental, exactly-once)."""

import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from datalake.bronze.exporter import BronzeExporter, export_dataset
from datalake.bronze.schemas import DATASETS
from datalake.bronze.verify import verify_and_record
from datalake.management.arguments import iso_moment
from datalake.models import JobRun
from datalake.storage import get_storage
from datalake.storage.base import StorageError

#: The largest --batch-size: a batch is held in memory, and a database bind parameter
#: is a 64-bit integer.
MAX_BATCH_SIZE = 10_000_000


class Command(BaseCommand):
    help = "Export source tables to bronze Parquet: incremental, exactly-once, resumable."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dataset", action="append", choices=sorted(DATASETS), dest="datasets",
            help="dataset to export (repeatable; default: all)",
        )  # fmt: skip
        parser.add_argument(
            "--until", type=iso_moment,
            help="export only up to this instant (ISO date or date-time; UTC if no offset)",
        )  # fmt: skip
        parser.add_argument(
            "--since", type=iso_moment,
            help="first export only: start at this date (YYYY-MM-DD) or ISO date-time",
        )  # fmt: skip
        parser.add_argument("--dry-run", action="store_true", help="say what would be exported")
        parser.add_argument("--batch-size", type=int, help="rows per batch (default 100000)")
        parser.add_argument("--verify", action="store_true", help="check bronze, export nothing")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options) -> None:
        datasets = options["datasets"] or list(DATASETS)
        until, since = options["until"], options["since"]
        if until and until > timezone.now():
            raise CommandError(f"--until {until.isoformat()} is in the future")
        if until and since and since >= until:
            raise CommandError("--since must be before --until")
        if options["batch_size"] is not None and options["batch_size"] <= 0:
            raise CommandError("--batch-size must be a positive number of rows")
        if options["batch_size"] is not None and options["batch_size"] > MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be at most {MAX_BATCH_SIZE:,} rows")
        if options["verify"] and options["dry_run"]:
            raise CommandError("--verify and --dry-run exclude each other")
        try:
            storage = get_storage()
            if options["verify"]:
                return self.verify(datasets, storage)
            if options["dry_run"]:
                return self.dry_run(datasets, storage, until, since)
            self.export(datasets, storage, until, since, options)
        except StorageError as exc:
            raise CommandError(f"lake storage: {exc}") from exc

    def dry_run(self, datasets, storage, until, since) -> None:
        for name in datasets:
            exporter = BronzeExporter(name, storage=storage, until=until, since=since)
            rows, gaps = exporter.pending()
            target = storage.uri(f"bronze/{name}")
            self.stdout.write(
                f"{name}: would export up to {rows} rows after the cursor and re-check"
                f" {gaps} cursor values in open gaps, to {target}"
            )
        self.stdout.write("dry run: nothing written")

    def verify(self, datasets, storage) -> None:
        failed = []
        for name in datasets:
            run, report = verify_and_record(name, storage)
            verdict = "OK" if report.ok else "PROBLEMS"
            self.stdout.write(
                f"{name}: {verdict} — {report.files} files, {report.rows} rows,"
                f" {report.quarantined} quarantined (run {run.pk})"
            )
            for problem in report.problems:
                self.stdout.write(f"  - {problem}")
            if not report.ok:
                failed.append(name)
        if failed:
            raise CommandError(f"verify found problems in: {', '.join(failed)}")

    def export(self, datasets, storage, until, since, options) -> None:
        show_progress = not options["no_progress"] and sys.stderr.isatty()
        results, failures = [], []
        for name in datasets:
            bar = None
            if show_progress:
                from tqdm import tqdm

                pending, _ = BronzeExporter(
                    name, storage=storage, until=until, since=since
                ).pending()
                bar = tqdm(total=pending, desc=f"bronze.{name}", unit="rows", file=sys.stderr)
            try:
                results.append(
                    export_dataset(
                        name,
                        trigger=JobRun.Trigger.CLI,
                        parameters={
                            "until": until and until.isoformat(),
                            "since": since and since.isoformat(),
                            "batch_size": options["batch_size"],
                        },
                        storage=storage, until=until, since=since,
                        batch_size=options["batch_size"],
                        progress=bar.update if bar else None,
                    )
                )  # fmt: skip
            except Exception as exc:  # recorded on the JobRun; report and go on
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
            finally:
                if bar:
                    bar.close()
        self.summary(results)
        if failures:
            raise CommandError("export failed — " + "; ".join(failures))

    def summary(self, results) -> None:
        header = (
            f"{'dataset':<10} {'status':<9} {'rows':>10} {'files':>6} {'bytes':>12}"
            f" {'rejected':>9} {'seconds':>8}  cursor"
        )
        self.stdout.write(header)
        for r in results:
            self.stdout.write(
                f"{r.dataset:<10} {r.status:<9} {r.rows:>10} {r.files:>6} {r.bytes:>12}"
                f" {r.rejected:>9} {r.seconds:>8.2f}  {r.cursor_start}->{r.cursor_end}"
                + (f" ({r.open_gaps} in open gaps)" if r.open_gaps else "")
                + (f" {r.message}" if r.message else "")
            )
