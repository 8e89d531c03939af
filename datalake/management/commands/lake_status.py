"""Print every lake dataset's health; exit non-zero when a contract is breached.

Warnings (a training set's label balance) are printed and named, and exit 0: they need a
look, not an action, so they do not fail a deploy gate.
"""

from django.core.management.base import BaseCommand, CommandError

from datalake.monitoring import UnreadableFooter, check_lake, status_table
from datalake.storage import StorageError


class Command(BaseCommand):
    help = (
        "Check the lake (freshness against the contracts, rows, nulls, label balance, "
        "bronze reconciled with the source), record it, print it; exit 1 on a breach, "
        "0 with warnings only."
    )

    def handle(self, *args, **options) -> None:
        try:
            run, statuses = check_lake()
        except (StorageError, UnreadableFooter) as exc:
            raise CommandError(str(exc)) from exc
        if run.status == run.Status.SKIPPED:
            raise CommandError(f"not checked: {run.error or 'another check is running'}")
        for line in status_table(statuses):
            self.stdout.write(line)
        breached = run.summary["breached"]
        if breached:
            raise CommandError(f"contract breached: {', '.join(breached)} (run {run.pk})")
        warned = run.summary.get("warnings", [])
        warnings = f"; warnings: {', '.join(warned)}" if warned else ""
        self.stdout.write(f"all contracts met (run {run.pk}){warnings}")
