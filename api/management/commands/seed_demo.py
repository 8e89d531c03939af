"""Fill the source tables with realistic, deterministic demo data."""

from datetime import UTC, date, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from api.demo import DemoConfig, DemoDataError, parse_start_date, seed_demo


def window(start_date: str | None, days: int, now: datetime) -> tuple[date, datetime | None]:
    """Return (first day, cut-off): a fixed --start-date keeps whole days; none means the
    `days` days ending now (the last one cut at the current minute)."""
    if start_date is not None:
        return parse_start_date(start_date), None
    until = now.astimezone(UTC).replace(second=0, microsecond=0)
    return until.date() - timedelta(days=max(days, 1) - 1), until


class Command(BaseCommand):
    help = (
        "Fill Client, Strategy, Operation, StopEvent, AuditTransaction, Trade, Portfolio and "
        "Kline with realistic demo data; the same --seed gives identical rows."
    )

    def add_arguments(self, parser) -> None:
        defaults = DemoConfig()
        parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
        parser.add_argument(
            "--events", type=int, default=defaults.events, help="number of StopEvents to create"
        )
        parser.add_argument(
            "--start-date",
            help=(
                "first day (YYYY-MM-DD): a fixed, reproducible window of whole days; by "
                f"default the window ends now, so the data is fresh (e.g. "
                f"{defaults.start_date.isoformat()} for the tests' fixed window)"
            ),
        )
        parser.add_argument("--days", type=int, default=defaults.days, help="days of data")
        parser.add_argument("--clients", type=int, default=defaults.clients, help="tenants")
        parser.add_argument(
            "--reset", action="store_true", help="delete the source tables' rows first"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options) -> None:
        try:
            start, until = window(options["start_date"], options["days"], timezone.now())
            config = DemoConfig(
                seed=options["seed"],
                events=options["events"],
                start_date=start,
                until=until,
                days=options["days"],
                clients=options["clients"],
                reset=options["reset"],
            )
        except DemoDataError as exc:
            raise CommandError(str(exc)) from exc
        if config.days > (date.max - config.start_date).days:
            raise CommandError(
                f"--start-date {config.start_date} with --days {config.days}"
                f" does not end before {date.max}"
            )
        # The raw stream: Django's wrapper would append a newline to every redraw.
        stream = self.stderr._out
        with tqdm(
            total=config.events,
            unit="event",
            unit_scale=True,
            file=stream,
            disable=True if options["no_progress"] else None,
        ) as bar:
            report = seed_demo(config, progress=bar.update)
        for line in report.summary_lines():
            self.stdout.write(line)
