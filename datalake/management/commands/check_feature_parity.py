"""Check that served online features equal what the training-set code computes."""

from django.core.management.base import BaseCommand, CommandError

from datalake.feature_refresh import ParityFailed, check_parity
from datalake.features import DEFAULT_FEATURE_SET, FEATURE_SETS
from datalake.storage.base import StorageError


class Command(BaseCommand):
    help = "Recompute sampled (client, symbol) at their as_of and compare with the served values"

    def add_arguments(self, parser) -> None:
        parser.add_argument("--samples", type=int, default=20, help="pairs to check")
        parser.add_argument("--feature-set", default=DEFAULT_FEATURE_SET,
                            choices=sorted(FEATURE_SETS))  # fmt: skip
        parser.add_argument("--timeout", type=float, help="kill the job after this many s")

    def handle(self, *args, **options) -> None:
        if options["samples"] < 1:
            raise CommandError("--samples must be at least 1")
        try:
            run = check_parity(options["samples"], options["feature_set"],
                               timeout=options["timeout"])  # fmt: skip
        except (ParityFailed, StorageError) as exc:
            raise CommandError(f"parity check failed: {exc}") from exc
        checks = "; ".join(c.observed for c in run.checks.all())
        self.stdout.write(
            f"parity OK: {run.parameters['served_checked']} served values match the"
            f" published rows; {checks} (run {run.pk})"
        )
