"""Serve the lake over Spark Connect until stopped: the read-only SQL endpoint."""

import os

from django.core.management.base import BaseCommand, CommandError

from datalake.conf import app_settings
from datalake.sql.endpoint import EndpointError, prepare_start, server_command


class Command(BaseCommand):
    help = "Run the lake's read-only SQL endpoint (Spark Connect) in the foreground."

    def handle(self, *args, **options) -> None:
        try:
            prepare_start()
            command, env = server_command()
        except EndpointError as error:
            raise CommandError(str(error)) from None
        self.stderr.write(
            f"lake_sql_server: Spark Connect on {app_settings.SQL_SERVER_HOST}:"
            f"{app_settings.SQL_SERVER_PORT}, {app_settings.SQL_SERVER_CORES} cores, "
            f"{app_settings.SQL_SERVER_MEMORY} driver memory"
        )
        self.stderr.flush()
        # The endpoint becomes this process, so a supervisor's signals reach it directly.
        os.execvpe(command[0], command, env)
