"""`export_bronze --verify` is a run: one JobRun per dataset, its checks as QualityChecks."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from datalake.bronze.exporter import export_dataset
from datalake.bronze.verify import CHECKS
from datalake.models import ExportCursor, JobRun
from tests import factories

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def checks_of(run: JobRun) -> dict[str, bool]:
    return dict(run.checks.values_list("name", "passed"))


def test_verify_records_a_run_per_dataset_with_its_checks(lake, tmp_path, capsys):
    factories.events(factories.operation(), range(1, 5))
    export_dataset("events", batch_size=2)

    call_command("export_bronze", "--dataset", "events", "--dataset", "orders", "--verify")
    runs = {r.job_name: r for r in JobRun.objects.filter(job_name__startswith="bronze.verify.")}
    assert set(runs) == {"bronze.verify.events", "bronze.verify.orders"}
    events = runs["bronze.verify.events"]
    assert (events.layer, events.dataset, events.status) == ("bronze", "events", "SUCCEEDED")
    assert events.rows_in == 4
    watermark = ExportCursor.objects.get(dataset="events").high_watermark
    assert events.parameters == {"files_checked": 2, "up_to_cursor": watermark}
    assert checks_of(events) == dict.fromkeys(CHECKS, True)
    assert (
        f"events: OK — 2 files, 4 rows, 0 quarantined (run {events.pk})" in capsys.readouterr().out
    )

    first = sorted((tmp_path / "lake").glob("bronze/events/date=*/part-*.parquet"))[0]
    first.write_bytes(first.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CommandError, match="verify found problems in: events"):
        call_command("export_bronze", "--dataset", "events", "--verify")
    failed = JobRun.objects.filter(job_name="bronze.verify.events").latest("pk")
    assert failed.status == JobRun.Status.FAILED
    broken = ["sha256_matches_manifest", "file_is_parquet", "no_missing_source_rows"]
    assert failed.error.startswith(f"3 problem(s) ({', '.join(broken)}): ")
    assert [name for name, ok in checks_of(failed).items() if not ok] == sorted(broken)
    observed = failed.checks.get(name="sha256_matches_manifest").observed
    assert observed.startswith("1 problem(s), e.g. bronze/events/date=")
    assert observed.endswith("sha256 differs from its manifest")
