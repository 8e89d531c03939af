import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import reverse

from datalake.models import JobRun
from datalake.runs import tracked_run

pytestmark = pytest.mark.django_db


def test_tracked_run_success_records_counters_and_timing():
    with tracked_run("bronze.export", layer="bronze", dataset="events") as run:
        run.rows_out = 7
    run.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.rows_out == 7
    assert run.finished_at >= run.started_at
    assert run.duration.total_seconds() >= 0
    assert run.pid
    assert run.host


def test_tracked_run_failure_records_error_and_reraises():
    with pytest.raises(ValueError, match="boom"), tracked_run("silver.x", layer="silver"):
        raise ValueError("boom")
    run = JobRun.objects.get(job_name="silver.x")
    assert run.status == JobRun.Status.FAILED
    assert run.error == "ValueError: boom"


def test_tracked_run_keeps_status_set_by_body():
    with tracked_run("bronze.export", layer="bronze") as run:
        run.skip("another export of events holds the lock")
    run.refresh_from_db()
    assert run.status == JobRun.Status.SKIPPED
    assert "holds the lock" in run.error


@override_settings(DATALAKE_SECRET_VALUES=["sk-live-123456"])
def test_secrets_never_stored():
    run = JobRun.objects.start(
        "bronze.export",
        layer="bronze",
        parameters={"uri": "s3://b/p", "aws_secret_access_key": "x", "note": "sk-live-123456"},
    )
    run.fail("connect to postgres://u:dbpass@h/db failed; key sk-live-123456 rejected")
    stored = JobRun.objects.values("parameters", "error").get(pk=run.pk)
    assert "sk-live-123456" not in str(stored)
    assert "dbpass" not in stored["error"]
    assert stored["parameters"]["uri"] == "s3://b/p"


def test_admin_history_is_read_only_and_lists_runs(client):
    admin = get_user_model().objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(admin)
    with tracked_run("bronze.export", layer="bronze", dataset="orders") as run:
        run.rows_out = 3
    changelist = client.get(reverse("admin:datalake_jobrun_changelist"))
    assert changelist.status_code == 200
    assert b"bronze.export" in changelist.content
    assert client.get(reverse("admin:datalake_jobrun_add")).status_code == 403
    detail = client.get(reverse("admin:datalake_jobrun_change", args=[run.pk]))
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    changelist_url = reverse("admin:datalake_jobrun_changelist")
    assert client.get(changelist_url + "?status__exact=FAILED").context["cl"].result_count == 0
    assert client.get(changelist_url + "?status__exact=SUCCEEDED").context["cl"].result_count == 1


@pytest.mark.parametrize(
    ("layer", "start", "end", "summary"),
    [
        ("silver", "", "", "-"),
        ("silver", "", "12", "all export batches, up to #12"),
        ("silver", "12", "12", "no export batch after #12"),
        ("silver", "12", "15", "export batches #13 to #15"),
        ("bronze", "0", "4000", "0 → 4000"),
        ("bronze", "4000", "", "4000 → -"),
    ],
)
def test_cursor_summary_says_what_a_run_consumed(layer, start, end, summary):
    run = JobRun(job_name=f"{layer}.x", layer=layer, cursor_start=start, cursor_end=end)
    assert run.cursor_summary == summary


def test_admin_shows_what_a_silver_run_consumed_and_wrote(client):
    admin = get_user_model().objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(admin)
    run = JobRun.objects.start(
        "silver.stop_executions", layer="silver", cursor_start="", cursor_end="7"
    )
    run.succeed(files_written=32, bytes_written=123_456)
    detail = client.get(reverse("admin:datalake_jobrun_change", args=[run.pk]))
    assert "all export batches, up to #7" in detail.content.decode()
    assert b"123456" in detail.content
