"""A lake written from another database is an error, never silently trusted.

A published name that already holds a file with the same checksum is a crash-resumed
publish (fine, nothing rewritten); with another checksum, or files of a dataset this
database never exported, the run stops: FAILED, one clear line, nothing published.
"""

import hashlib
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from api.models import StopEvent
from datalake.bronze.exporter import LakeMismatch, export_dataset
from datalake.bronze.verify import verify_dataset
from datalake.models import ExportBatch, ExportCursor, JobRun
from datalake.storage.base import Storage
from tests import factories
from tests.lake_helpers import bronze_rows, source_rows

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ANOTHER_DATABASE = "this lake was written by another database"


@pytest.fixture(params=["local", "s3"])
def store(request, lake) -> Storage:
    """The lake on local disk or on S3 (moto server, fresh bucket); work dir from `lake`."""
    if request.param == "local":
        return lake
    return request.getfixturevalue("s3_storage")


def lake_state(store: Storage) -> dict[str, int]:
    return {info.key: info.size for info in store.list("")}


def last_run() -> JobRun:
    return JobRun.objects.filter(job_name="bronze.export").latest("pk")


def back_to_planned() -> None:
    """Leave the database as a crash after publishing batch 1, before its commit, would."""
    ExportBatch.objects.update(status=ExportBatch.Status.PLANNED, committed_at=None)
    ExportCursor.objects.update(high_watermark=0, gaps=[])


def test_same_file_already_published_is_taken_as_is(store):
    factories.events(factories.operation(), [1, 2, 3])
    export_dataset("events", storage=store)
    before = lake_state(store)
    back_to_planned()

    resumed = export_dataset("events", storage=store)

    assert (resumed.status, resumed.rows, resumed.cursor_end) == (JobRun.Status.SUCCEEDED, 3, 3)
    assert lake_state(store) == before
    assert bronze_rows(store, "events") == source_rows("events")
    assert verify_dataset("events", store).ok


def test_planned_file_replaced_by_another_is_an_error(store):
    factories.events(factories.operation(), [1, 2, 3])
    first = export_dataset("events", storage=store)
    (key,) = [k for k in lake_state(store) if k.endswith("part-00000001-0000.parquet")]
    store.put_bytes(b"another database's file", key)
    back_to_planned()

    with pytest.raises(LakeMismatch) as caught:
        export_dataset("events", storage=store)

    assert (
        str(caught.value) == f"{key} already exists with a different checksum: {ANOTHER_DATABASE}"
    )
    run = last_run()
    assert run.status == JobRun.Status.FAILED
    assert run.error == f"LakeMismatch: {caught.value}"
    assert ExportCursor.objects.get(dataset="events").high_watermark == 0
    assert ExportBatch.objects.get().status == ExportBatch.Status.PLANNED
    assert first.cursor_end == 3


def test_new_batch_meeting_a_foreign_file_publishes_nothing(store):
    op = factories.operation()
    factories.events(op, [1, 2])
    export_dataset("events", storage=store)
    # Batch 2 spans midnight: part-00000002-0000 on the 27th, part-00000002-0001 on the 28th.
    factories.events(op, [3, 4, 5, 6], start=factories.T0 + timedelta(minutes=1))
    foreign = "bronze/events/date=2024-12-28/part-00000002-0001.parquet"
    store.put_bytes(b"PAR1 not ours", foreign)
    before = lake_state(store)

    with pytest.raises(LakeMismatch, match=ANOTHER_DATABASE):
        export_dataset("events", storage=store)

    assert lake_state(store) == before  # not even the batch's other, new, file
    assert store.get_bytes(foreign) == b"PAR1 not ours"
    assert last_run().status == JobRun.Status.FAILED
    assert ExportCursor.objects.get(dataset="events").high_watermark == 2


def test_manifest_of_another_file_is_an_error(store):
    factories.events(factories.operation(), [1, 2, 3])
    export_dataset("events", storage=store)
    (manifest,) = [k for k in lake_state(store) if k.endswith("part-00000001-0000.json")]
    store.put_bytes(store.get_bytes(manifest).replace(b'"sha256": "', b'"sha256": "0'), manifest)
    back_to_planned()

    with pytest.raises(LakeMismatch) as caught:
        export_dataset("events", storage=store)

    assert caught.value.key == manifest


def test_fresh_database_with_an_old_lake_is_an_error(store):
    op = factories.operation()
    factories.events(op, [1, 2, 3])
    export_dataset("events", storage=store)
    before = lake_state(store)
    # Another database: same lake, no export history, other rows.
    ExportBatch.objects.all().delete()
    ExportCursor.objects.all().delete()
    factories.events(op, [4, 5], start=factories.T0 + timedelta(days=3))

    with pytest.raises(LakeMismatch) as caught:
        export_dataset("events", storage=store)

    assert str(caught.value).endswith(
        f"exists but this database has never exported events: {ANOTHER_DATABASE}"
    )
    assert lake_state(store) == before
    assert last_run().status == JobRun.Status.FAILED


def test_command_exits_with_one_line(lake):
    factories.events(factories.operation(), [1, 2, 3])
    export_dataset("events")
    (key,) = [k for k in lake_state(lake) if k.endswith("part-00000001-0000.parquet")]
    lake.put_bytes(b"x", key)
    back_to_planned()

    with pytest.raises(CommandError) as caught:
        call_command("export_bronze", "--dataset", "events", "--no-progress")

    assert str(caught.value) == (
        f"export failed — events: LakeMismatch: {key} already exists with a different"
        f" checksum: {ANOTHER_DATABASE}"
    )


def test_file_rewritten_on_resume_is_described_by_its_manifest(store):
    """A batch resumed before its file was published writes the file again from the
    source; if it comes out different (a row changed meanwhile, another Parquet writer),
    the manifest and the batch record describe the file published, not the plan."""
    factories.events(factories.operation(), [1, 2, 3])
    export_dataset("events", storage=store)
    for key in list(lake_state(store)):
        store.delete(key)  # as if the crash came before anything was published
    back_to_planned()
    StopEvent.objects.filter(event_seq=2).update(retry_count=7)

    resumed = export_dataset("events", storage=store)

    assert (resumed.status, resumed.rows) == (JobRun.Status.SUCCEEDED, 3)
    assert verify_dataset("events", store).ok
    assert bronze_rows(store, "events") == source_rows("events")
    (planned,) = ExportBatch.objects.get().files
    assert planned["sha256"] == hashlib.sha256(store.get_bytes(planned["key"])).hexdigest()
