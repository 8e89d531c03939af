"""Notifications: logged at ERROR, posted to a webhook (a real local HTTP server), mailed."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail

from datalake.models import JobRun, QualityCheck
from datalake.notify import notify

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook():
    """A webhook receiver on 127.0.0.1: yields (url, list of received JSON bodies)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_notify_logs_posts_and_mails(settings, webhook, caplog):
    url, received = webhook
    settings.DATALAKE_ALERT_WEBHOOK_URL = url
    settings.DATALAKE_ALERT_EMAILS = ["ops@example.com"]
    settings.DATALAKE_SECRET_VALUES = ["s3cr3t-key"]
    notify("failure", "bronze.export run 7 failed", {"error": "auth s3cr3t-key refused"})

    assert received == [
        {
            "event": "failure",
            "subject": "bronze.export run 7 failed",
            "details": {"error": "auth *** refused"},
        }
    ]
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "[failure] bronze.export run 7 failed" in errors[0].message
    assert "s3cr3t" not in caplog.text
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"]
    assert "bronze.export run 7 failed" in mail.outbox[0].subject
    assert "auth *** refused" in mail.outbox[0].body


def test_an_unreachable_webhook_never_raises(settings, caplog):
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.DATALAKE_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{port}/hook"
    settings.DATALAKE_ALERT_TIMEOUT_SECONDS = 1
    notify("pause", "schedule x paused")
    assert "alert webhook failed" in caplog.text


def test_unknown_event_is_refused():
    with pytest.raises(ValueError, match="unknown notification event"):
        notify("lunch", "time")


def test_a_failed_run_and_a_contract_breach_notify(settings, webhook):
    url, received = webhook
    settings.DATALAKE_ALERT_WEBHOOK_URL = url
    failed = JobRun.objects.start("silver.stop_executions", layer="silver")
    failed.fail("Boom: spark died")
    export = JobRun.objects.start("bronze.export", layer="bronze", dataset="events")
    export.succeed(rows_out=10, rows_rejected=2)
    checked = JobRun.objects.start("silver.x", layer="silver", dataset="x")
    QualityCheck.objects.create(
        run=checked, dataset="silver.x", partition="date=2024-12-27",
        name="slippage_within_bounds", passed=False, critical=True,
    )  # fmt: skip
    checked.fail("critical check failed")
    parent = JobRun.objects.start("bronze.ingest", layer="bronze")
    JobRun.objects.start("bronze.export", layer="bronze", dataset="orders", parent=parent).fail(
        "child"
    )  # a child's failure is told by its parent, once
    JobRun.objects.start("bronze.export", layer="bronze", dataset="trades").succeed()
    # An analyst's failed query is the analyst's error message, not an operations alert.
    JobRun.objects.start("lake_sql", layer="ops").fail("[TABLE_OR_VIEW_NOT_FOUND] typo")

    events = [(r["event"], r["subject"]) for r in received]
    assert events == [
        ("failure", f"silver.stop_executions run {failed.pk} failed"),
        ("contract_breach", f"bronze.export run {export.pk} (events) broke its contract"),
        ("failure", f"silver.x run {checked.pk} (x) failed"),
        ("contract_breach", f"silver.x run {checked.pk} (x) broke its contract"),
    ]  # fmt: skip
    assert received[1]["details"] == {"breaches": "2 rows quarantined"}
    assert received[3]["details"] == {
        "breaches": "check slippage_within_bounds failed on date=2024-12-27"
    }
