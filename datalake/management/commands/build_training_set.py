"""Build a version of a gold training set with Spark."""

from datetime import date, datetime

from django.core.management.base import BaseCommand, CommandError

from datalake.gold import TRAINING_SETS, BuildOptions, InvalidBuild, build_training_set, describe
from datalake.spark.runner import SparkJobFailed
from datalake.storage.base import StorageError


def parse(value: str | None, kind, option: str):
    if value is None:
        return None
    try:
        return kind.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not an ISO {kind.__name__}") from None


class Command(BaseCommand):
    help = (
        "Build a gold training set version, e.g. build_training_set stop_outcome "
        "--version v1.0.0 --as-of 2024-12-28T00:00:00Z --test-from 2024-12-20 --embargo 1h"
    )

    def add_base_argument(self, parser, *args, **kwargs) -> None:
        # --version names the training-set version here, not the program's.
        if args != ("--version",):
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", choices=TRAINING_SETS, help="training set to build")
        parser.add_argument("--version", help="vMAJOR.MINOR.PATCH (default: next minor)")
        parser.add_argument("--as-of", help="only outcomes known before this instant (UTC)")
        split = parser.add_mutually_exclusive_group()
        split.add_argument("--test-from", help="test split: triggered from this date (UTC)")
        split.add_argument("--test-fraction", type=float, help="test split: latest fraction")
        parser.add_argument("--embargo", help="gap before the test split: 3600, 30m, 1h, 2d")
        parser.add_argument("--timeout", type=float, help="kill the job after this many s")

    def handle(self, *args, **options) -> None:
        build = BuildOptions(
            version=options["version"],
            as_of=parse(options["as_of"], datetime, "--as-of"),
            test_from=parse(options["test_from"], date, "--test-from"),
            test_fraction=options["test_fraction"],
            embargo=options["embargo"],
        )
        self.stdout.write(f"gold.training_sets.{options['name']}: ...")
        try:
            run = build_training_set(options["name"], build, timeout=options["timeout"])
        except InvalidBuild as exc:
            raise CommandError(str(exc)) from exc
        except (SparkJobFailed, StorageError) as exc:
            raise CommandError(f"gold.training_sets.{options['name']} failed: {exc}") from exc
        self.stdout.write(describe(run))
