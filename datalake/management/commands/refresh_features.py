"""Refresh the online features with Spark and serve the new values."""

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from datalake.feature_refresh import refresh_features
from datalake.features import DEFAULT_FEATURE_SET, FEATURE_SETS
from datalake.spark.runner import SparkJobFailed
from datalake.storage.base import StorageError


class Command(BaseCommand):
    help = "Recompute the latest feature values per (client, symbol) and load them into the cache"

    def add_arguments(self, parser) -> None:
        parser.add_argument("feature_set", nargs="?", default=DEFAULT_FEATURE_SET,
                            choices=sorted(FEATURE_SETS))  # fmt: skip
        parser.add_argument("--as-of", help="cutoff (UTC); default: the newest complete klines")
        parser.add_argument("--timeout", type=float, help="kill the job after this many s")

    def handle(self, *args, **options) -> None:
        as_of = None
        if options["as_of"]:
            try:
                as_of = datetime.fromisoformat(options["as_of"].replace("Z", "+00:00"))
            except ValueError:
                raise CommandError(f"--as-of: {options['as_of']!r} is not an ISO time") from None
        try:
            run = refresh_features(options["feature_set"], as_of=as_of, timeout=options["timeout"])
        except (SparkJobFailed, StorageError) as exc:
            raise CommandError(f"refresh of {options['feature_set']} failed: {exc}") from exc
        if run.status == run.Status.SKIPPED:
            self.stdout.write(f"{options['feature_set']}: skipped — {run.error}")
            return
        p = run.parameters
        self.stdout.write(
            f"{options['feature_set']}: {p.get('pairs', 0)} pairs as of {p.get('as_of')},"
            f" cache version {run.pk} ({p.get('cache_entries')} entries) (run {run.pk})"
        )
