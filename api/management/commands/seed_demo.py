"""Fill the source tables with realistic, deterministic demo data."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from api.demo import DemoConfig, DemoDataError, parse_start_date, seed_demo


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
            "--start-date", default=defaults.start_date.isoformat(), help="first day (YYYY-MM-DD)"
        )
        parser.add_argument("--days", type=int, default=defaults.days, help="days of data")
        parser.add_argument("--clients", type=int, default=defaults.clients, help="tenants")
        parser.add_argument(
            "--reset", action="store_true", help="delete the source tables' rows first"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options) -> None:
        try:
            config = DemoConfig(
                seed=options["seed"],
                events=options["events"],
                start_date=parse_start_date(options["start_date"]),
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
