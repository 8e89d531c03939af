"""Delete lake partitions past their retention horizon (or list them with --dry-run)."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from datalake.retention import apply_retention
from datalake.storage import StorageError


class Command(BaseCommand):
    help = (
        "Apply retention: bronze 90 days, silver 365, online features 90, training sets "
        "kept; never a bronze partition silver has not consumed. Recorded as a JobRun."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="list, delete nothing")
        parser.add_argument("--today", help="reference date YYYY-MM-DD (default: today, UTC)")

    def handle(self, *args, **options) -> None:
        try:
            today = date.fromisoformat(options["today"]) if options["today"] else None
        except ValueError:
            raise CommandError(f"--today: {options['today']!r} is not a date") from None
        try:
            run = apply_retention(dry_run=options["dry_run"], today=today)
        except StorageError as exc:
            raise CommandError(str(exc)) from exc
        summary = run.summary
        verb = "would delete" if summary["dry_run"] else "deleted"
        for doomed in summary["deleted"]:
            self.stdout.write(
                f"{verb} {doomed['prefix']} ({doomed['files']} files, {doomed['bytes']} bytes): "
                f"{doomed['reason']}"
            )
        for prefix in summary["kept_unconsumed"]:
            self.stdout.write(f"kept {prefix}: expired but not yet consumed by silver")
        self.stdout.write(
            f"run {run.pk}: {verb} {summary['partitions']} partitions, "
            f"{summary['staging_dirs']} staging dirs, {summary['files']} files, "
            f"{summary['bytes']} bytes"
        )
