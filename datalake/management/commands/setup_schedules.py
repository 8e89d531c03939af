"""Create or update the lake's Celery beat schedules (safe on every deploy)."""

from celery import current_app
from django.core.management.base import BaseCommand, CommandError

from datalake.schedules import ScheduleError, setup_schedules


class Command(BaseCommand):
    help = (
        "Write the lake's schedules to django-celery-beat: create missing ones, update the"
        " ones this command wrote, leave alone those edited or disabled in admin."
    )

    def handle(self, *args, **options) -> None:
        current_app.loader.import_default_modules()
        try:
            outcomes = setup_schedules(set(current_app.tasks))
        except ScheduleError as exc:
            raise CommandError(str(exc)) from exc
        for outcome in outcomes:
            reason = f" ({outcome.reason})" if outcome.reason else ""
            self.stdout.write(f"{outcome.name:<36} {outcome.action}{reason}")
