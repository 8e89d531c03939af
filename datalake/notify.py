"""Tell the operators: log at ERROR, then an optional webhook and optional e-mails.

Events are `failure` (a run failed), `pause` (a schedule paused itself) and
`contract_breach` (rows quarantined, a critical quality check failed). A notification
never raises: a webhook or mail server that is down must not fail the job it reports on.
"""

import json
import logging
import urllib.request
from typing import Any

from django.core.mail import send_mail

from datalake.conf import app_settings
from datalake.redaction import redact_text

logger = logging.getLogger(__name__)

EVENTS = ("failure", "pause", "contract_breach")


def notify(event: str, subject: str, details: dict[str, Any] | None = None) -> None:
    """Log `subject` at ERROR and send it to the configured webhook and e-mail addresses."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}; known: {', '.join(EVENTS)}")
    secrets = app_settings.SECRET_VALUES
    subject = redact_text(subject, secrets)
    details = {k: redact_text(str(v), secrets) for k, v in (details or {}).items()}
    logger.error("[%s] %s %s", event, subject, json.dumps(details, sort_keys=True))
    payload = {"event": event, "subject": subject, "details": details}
    if app_settings.ALERT_WEBHOOK_URL:
        _post_webhook(app_settings.ALERT_WEBHOOK_URL, payload)
    if app_settings.ALERT_EMAILS:
        _send_mail(app_settings.ALERT_EMAILS, payload)


def _post_webhook(url: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=app_settings.ALERT_TIMEOUT_SECONDS):
            pass
    except Exception as exc:  # any failure to deliver is logged, never raised
        logger.warning("alert webhook failed: %s: %s", type(exc).__name__, exc)


def _send_mail(recipients: list[str], payload: dict[str, Any]) -> None:
    body = "\n".join(
        [payload["subject"], ""] + [f"{k}: {v}" for k, v in payload["details"].items()]
    )
    try:
        send_mail(
            f"[datalake {payload['event']}] {payload['subject']}"[:200],
            body,
            None,
            list(recipients),
            fail_silently=False,
        )
    except Exception as exc:  # a mail server that is down must not fail the job
        logger.warning("alert e-mail failed: %s: %s", type(exc).__name__, exc)
