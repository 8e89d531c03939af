"""Run read-only Spark SQL over the lake: every dataset is a table under its dotted name."""

from django.core.management.base import BaseCommand, CommandError

from datalake.sql.service import QueryFailed, QueryRefused, read_query_file, run_query
from spark_jobs.sqltext import FORMATS


class Command(BaseCommand):
    help = (
        'Run read-only Spark SQL over the lake, e.g. lake_sql "SELECT COUNT(*) FROM bronze.events"'
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("query", nargs="?", help="SQL to run (or use -f)")
        parser.add_argument("-f", "--file", help="file of SQL statements separated by ;")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default="table",
            help="table (several statements, each under its title), csv or json lines "
            "(one statement)",
        )
        parser.add_argument("--timeout", type=float, help="kill the query after this many s")

    def handle(self, *args, **options) -> None:
        if bool(options["query"]) == bool(options["file"]):
            raise CommandError("give either a query or -f FILE")
        if options["timeout"] is not None and options["timeout"] <= 0:
            raise CommandError("--timeout must be a positive number of seconds")
        try:
            text = read_query_file(options["file"]) if options["file"] else options["query"]
            run_query(
                text,
                options["format"],
                self.stdout,
                source=options["file"] or "",
                timeout=options["timeout"],
                notice=self.stderr.write,
            )
        except (QueryRefused, QueryFailed) as error:
            raise CommandError(str(error).strip().splitlines()[0]) from None
