"""Run Spark SQL over the lake: every dataset is a table under its dotted name."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from datalake.models import JobRun
from datalake.spark.runner import lake_uri, run_script


class Command(BaseCommand):
    help = 'Run Spark SQL over the lake, e.g. lake_sql "SELECT COUNT(*) FROM bronze.events"'

    def add_arguments(self, parser) -> None:
        parser.add_argument("query", nargs="?", help="SQL to run (or use -f)")
        parser.add_argument("-f", "--file", help="file of SQL statements separated by ;")
        parser.add_argument(
            "--format", choices=["table", "csv", "json"], default="table", help="output format"
        )
        parser.add_argument("--timeout", type=float, help="kill the query after this many s")

    def handle(self, *args, **options) -> None:
        if bool(options["query"]) == bool(options["file"]):
            raise CommandError("give either a query or -f FILE")
        source = ["--query", options["query"]]
        if options["file"]:
            path = Path(options["file"])
            if not path.is_file():
                raise CommandError(f"-f: no such file {path}")
            source = ["--file", str(path.resolve())]
        run = JobRun.objects.start(
            "lake_sql",
            layer=JobRun.Layer.OPS,
            parameters={"query": options["query"] or "", "file": options["file"] or ""},
        )
        outcome = run_script(
            "sql.py",
            ["--lake-uri", lake_uri(), *source, "--format", options["format"]],
            run=run,
            timeout=options["timeout"],
            stdout_sink=self.stdout.write,
        )
        if outcome.ok:
            run.succeed()
            return
        tail = "\n".join(outcome.log_tail[-8:])
        reason = "timed out" if outcome.timed_out else f"exit code {outcome.returncode}"
        run.fail(f"lake_sql {reason}\n{tail}")
        raise CommandError(f"query failed ({reason}); log: {outcome.log_file}\n{tail}")
