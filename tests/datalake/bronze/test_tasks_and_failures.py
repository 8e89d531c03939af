"""The Celery export task, and S3 failures in the middle of an export."""

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError
from django.core.management import call_command
from django.core.management.base import CommandError

from datalake.bronze.exporter import export_dataset
from datalake.bronze.verify import verify_dataset
from datalake.locks import exclusive
from datalake.models import JobRun
from datalake.storage.base import StorageError
from datalake.tasks import export_bronze
from tests import factories
from tests.lake_helpers import bronze_rows, source_rows, visible_parquet_keys

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_task_exports_and_records_a_scheduled_run(lake):
    factories.events(factories.operation(), range(1, 4))
    outcome = export_bronze.apply(args=["events"]).get()
    assert outcome["rows"] == 3
    run = JobRun.objects.get(pk=outcome["run_id"])
    assert (run.trigger, run.status, run.dataset) == ("schedule", "SUCCEEDED", "events")


def test_task_is_skipped_while_another_export_runs(lake, is_postgres):
    if is_postgres:
        pytest.skip("PostgreSQL advisory locks are re-entrant in one session: see test_export")
    factories.events(factories.operation(), [1])
    with exclusive("bronze.export.events"):
        outcome = export_bronze.apply(args=["events"]).get()
    assert outcome["status"] == JobRun.Status.SKIPPED
    assert not visible_parquet_keys(lake, "bronze/")


def test_task_acknowledges_late_and_retries_when_storage_is_down():
    assert export_bronze.acks_late is True
    assert StorageError not in export_bronze.autoretry_for  # bad config is not retried
    assert export_bronze.max_retries >= 3


@pytest.fixture
def s3_lake(settings, tmp_path, s3_endpoint, s3_bucket, make_s3_storage):
    settings.DATALAKE_URI = f"s3://{s3_bucket}/lake"
    settings.DATALAKE_S3_ENDPOINT_URL = s3_endpoint
    settings.DATALAKE_S3_ADDRESSING_STYLE = "path"
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    return make_s3_storage(max_attempts=1)


def fail_nth_put(storage, n: int, error: Exception) -> None:
    calls = {"count": 0}

    def hook(**_):
        calls["count"] += 1
        if calls["count"] == n:
            raise error

    storage.client.meta.events.register("before-send.s3.PutObject", hook)


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),  # the endpoint goes down
        ConnectionClosedError(endpoint_url="http://127.0.0.1"),  # an upload cut short
    ],
    ids=["endpoint-down", "upload-failed"],
)
def test_s3_failure_mid_run_fails_clearly_and_rerun_is_exactly_once(s3_lake, error):
    factories.events(factories.operation(), range(1, 13))
    fail_nth_put(s3_lake, 3, error)  # data file, manifest, then the second data file fails
    with pytest.raises(Exception) as raised:
        export_dataset("events", storage=s3_lake, batch_size=4)
    run = JobRun.objects.get()
    assert run.status == JobRun.Status.FAILED
    assert run.error.split(":")[0] in {"StorageUnavailable", "StorageError"}
    assert "testing" not in run.error  # no credentials in the record
    assert isinstance(raised.value, StorageError)
    before = visible_parquet_keys(s3_lake, "bronze/")
    assert len(before) == 1  # the first published file; nothing partial

    export_dataset("events", batch_size=4)  # a fresh storage: the endpoint is back
    assert bronze_rows(s3_lake, "events") == source_rows("events")
    assert verify_dataset("events", s3_lake).ok


def test_unreachable_s3_is_a_clear_command_error(settings, tmp_path, aws_credentials):
    settings.DATALAKE_URI = "s3://robson-datalake/lake"
    settings.DATALAKE_S3_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens there
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    factories.events(factories.operation(), [1])
    with pytest.raises(CommandError, match=r"127\.0\.0\.1:9") as raised:
        call_command("export_bronze", "--dataset", "events", "--no-progress")
    assert "testing" not in str(raised.value)
    assert JobRun.objects.get().status == JobRun.Status.FAILED
