"""The admin that runs the lake: re-run and cancel actions, permissions, datasets page."""

import datetime as dt
import json
import os
import signal
import subprocess

import pytest
from celery import current_app
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from datalake import operations
from datalake.models import JobRun
from datalake.monitoring import check_lake
from datalake.storage import get_storage
from tests.datalake.ops.test_monitoring import silver_executions, training_set

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:datalake_jobrun_changelist"
DATASETS = "admin:datalake_datasetstatus_changelist"
SECRET = "sk-live-abcdef123456"


def staff(username: str, *perms: str):
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    return user


@pytest.fixture
def operator(client):
    client.force_login(staff("operator", "view_jobrun", "operate_jobrun", "view_datasetstatus"))
    return client


@pytest.fixture
def viewer(client):
    client.force_login(staff("viewer", "view_jobrun", "view_datasetstatus"))
    return client


@pytest.fixture
def sleeper():
    """A process in its own group, standing for a running spark-submit."""
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def running(process_group: int) -> JobRun:
    return JobRun.objects.start("silver.stop_executions", layer="silver",
                                dataset="stop_executions", process_group=process_group)  # fmt: skip


def act(client, action: str, run: JobRun):
    return client.post(
        reverse(CHANGELIST), {"action": action, "_selected_action": [run.pk]}, follow=True
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_cancel_kills_the_process_group_and_ends_cancelled(operator, sleeper) -> None:
    run = running(sleeper.pid)
    response = act(operator, "cancel_runs", run)
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    run.refresh_from_db()
    assert run.status == JobRun.Status.CANCELLED
    assert run.error == "cancelled by operator"
    assert run.finished_at is not None
    assert messages_of(response) == [f"run {run.pk} cancelled (killed process group {sleeper.pid})"]
    # The job's own ending (the runner records the killed spark-submit) keeps CANCELLED.
    run.fail("spark-submit exited with code -9")
    run.refresh_from_db()
    assert run.status == JobRun.Status.CANCELLED


def test_cancel_refuses_a_finished_run(operator) -> None:
    run = JobRun.objects.create(job_name="bronze.export", layer="bronze", status="SUCCEEDED")
    response = act(operator, "cancel_runs", run)
    assert messages_of(response) == [f"run {run.pk} is SUCCEEDED: nothing to cancel"]
    run.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED


def test_without_the_permission_nothing_can_be_cancelled_or_rerun(viewer, sleeper) -> None:
    run = running(sleeper.pid)
    page = viewer.get(reverse(CHANGELIST))
    assert page.status_code == 200
    assert page.context["action_form"] is None  # no action offered at all
    act(viewer, "cancel_runs", run)
    run.refresh_from_db()
    assert run.status == JobRun.Status.RUNNING
    assert sleeper.poll() is None


def test_anonymous_and_non_staff_cannot_reach_the_pages(client) -> None:
    for url in (reverse(CHANGELIST), reverse(DATASETS)):
        assert client.get(url).status_code == 302  # to the login page
    client.force_login(staff("nobody"))
    assert client.get(reverse(DATASETS)).status_code == 403


@pytest.fixture
def eager():
    current_app.conf.task_always_eager = True
    yield
    current_app.conf.task_always_eager = False


def test_rerun_queues_the_same_job_again(operator, eager, tmp_path, settings) -> None:
    settings.DATALAKE_URI = str(tmp_path / "lake")
    failed = JobRun.objects.create(job_name="ops.retention", layer="ops", status="FAILED",
                                   parameters={"dry_run": True})  # fmt: skip
    response = act(operator, "rerun_runs", failed)
    again = JobRun.objects.filter(job_name="ops.retention").exclude(pk=failed.pk).get()
    assert again.status == JobRun.Status.SUCCEEDED
    assert again.summary["dry_run"] is True
    (message,) = messages_of(response)
    assert message.startswith(f"run {failed.pk}: re-run queued as datalake.apply_retention")


def test_rerun_refuses_a_run_that_did_not_fail(operator) -> None:
    run = JobRun.objects.create(job_name="ops.retention", layer="ops", status="SUCCEEDED")
    response = act(operator, "rerun_runs", run)
    assert messages_of(response) == [f"run {run.pk} is SUCCEEDED; only failed or cancelled runs"]
    assert JobRun.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"job_name": "bronze.export", "dataset": "events", "parameters": {"batch_size": 5}},
         ("datalake.export_bronze", {"dataset": "events", "batch_size": 5})),
        ({"job_name": "bronze.export", "dataset": "orders",
          "parameters": {"until": "2024-12-27T12:00:00Z", "since": None, "batch_size": None}},
         ("datalake.export_bronze",
          {"dataset": "orders", "batch_size": None, "until": "2024-12-27T12:00:00Z"})),
        ({"job_name": "silver.operations", "parameters": {"full": True}},
         ("datalake.run_silver", {"job": "silver.operations", "full": True})),
        ({"job_name": "backfill", "parameters": {
            "start_date": "2024-01-01", "end_date": "2024-01-02", "input": "bronze.events",
            "output": "silver.stop_executions_v2", "overwrite": True, "chunk_days": 7}},
         ("datalake.backfill", {"start_date": "2024-01-01", "end_date": "2024-01-02",
                                "input": "bronze.events", "output": "silver.stop_executions_v2",
                                "overwrite": True, "chunk_days": 7})),
        ({"job_name": "ops.lake_checks"}, ("datalake.lake_checks", {})),
    ],
)  # fmt: skip
def test_rerun_target(fields: dict, expected: tuple) -> None:
    assert operations.rerun_target(JobRun(layer="x", **fields)) == expected


def test_rerun_target_refuses_unknown_jobs() -> None:
    with pytest.raises(operations.NotRerunnable):
        operations.rerun_target(JobRun(job_name="ops.ping", layer="ops"))


@pytest.fixture
def checked_lake(tmp_path, settings):
    """A lake with silver data, a failed run whose error held a secret, and two checks."""
    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_SECRET_VALUES = [SECRET]
    storage = get_storage()
    now = timezone.now()
    for days in (2, 1, 0):
        silver_executions(storage, [now - dt.timedelta(days=days, minutes=5)] * (3 + days))
    run = JobRun.objects.start("silver.stop_executions", layer="silver",
                               dataset="stop_executions")  # fmt: skip
    run.fail(f"S3 refused key {SECRET}")
    check_lake(now=now - dt.timedelta(hours=1))
    check_lake(now=now)
    return run


def test_datasets_page(viewer, checked_lake) -> None:
    page = viewer.get(reverse(DATASETS))
    assert page.status_code == 200
    html = page.content.decode()
    assert SECRET not in html
    (row,) = [r for r in page.context["rows"] if r.status.dataset == "silver.stop_executions"]
    assert (row.status.partitions, row.status.rows) == (3, 12)
    assert row.last_run == checked_lake
    assert row.contract == "24.0 h"
    charts = page.context["charts"]
    assert charts["rows-per-day"]["datasets"] == [
        {"label": "silver.stop_executions", "data": [5, 4, 3]}
    ]
    assert [len(d["data"]) for d in charts["freshness"]["datasets"]] == [2]
    assert "silver.stop_executions" in {d["label"] for d in charts["durations"]["datasets"]}
    data = json.loads(html.split('id="lake-chart-data" type="application/json">')[1].split("<")[0])
    assert data == json.loads(json.dumps(charts))
    assert "datalake/chart.umd.js" in html


def test_job_history_shows_seconds_and_no_secret(viewer, checked_lake) -> None:
    html = viewer.get(reverse(CHANGELIST)).content.decode()
    assert SECRET not in html
    assert checked_lake.started_at.strftime("%Y-%m-%d %H:%M:%S") in html
    assert "FAILED: S3 refused key ***" in html
    detail = viewer.get(reverse("admin:datalake_jobrun_change", args=[checked_lake.pk]))
    assert SECRET not in detail.content.decode()


@pytest.mark.django_db(transaction=True)
def test_an_export_rerun_stops_at_the_failed_runs_until(tmp_path, settings) -> None:
    from datalake.tasks import export_bronze
    from tests import factories

    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    factories.events(factories.operation(), range(1, 5), step=dt.timedelta(hours=1))
    failed = JobRun.objects.create(
        job_name="bronze.export",
        layer="bronze",
        dataset="events",
        status="FAILED",
        parameters={"until": "2024-12-28T01:00:00Z"},
    )
    _, kwargs = operations.rerun_target(failed)
    result = export_bronze.apply(kwargs=kwargs).get()
    assert result["rows"] == 2  # 23:58 and 00:58; 01:58 and 02:58 are after --until


def test_datasets_page_before_any_check(viewer) -> None:
    page = viewer.get(reverse(DATASETS))
    assert page.status_code == 200
    assert "No check has run yet" in page.content.decode()
    assert page.context["charts"]["rows-per-day"]["datasets"] == []


def test_datasets_page_shows_a_warning_apart_from_breaches(viewer, tmp_path, settings) -> None:
    settings.DATALAKE_URI = str(tmp_path / "lake")
    now = timezone.now()
    training_set(get_storage(), now.date(), {"v1.0.0": [True] * 19 + [False]})
    check_lake(now=now)
    html = viewer.get(reverse(DATASETS)).content.decode()
    assert '<td class="lake-health-WARNING">Warning</td>' in html
    assert 'class="warnings">warning: v1.0.0: label balance 95.0% outside 10%-90%</td>' in html
