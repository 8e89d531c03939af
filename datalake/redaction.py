"""Scrub secrets from anything that is about to be stored or shown.

Pure functions, no Django: the caller passes the secret values it knows of.
"""

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"

SECRET_KEY_PATTERN = re.compile(
    r"(secret|password|passwd|pwd|token|credential|api[_-]?key|access[_-]?key|private[_-]?key)",
    re.IGNORECASE,
)
# scheme://user:password@host -> scheme://user:***@host
URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?=@)", re.I)
# key=value and key: value pairs whose key names a secret, e.g. in an error message.
INLINE_SECRET = re.compile(
    r"(?P<key>\b[\w.\-]*"
    + SECRET_KEY_PATTERN.pattern
    + r"[\w.\-]*\s*[=:]\s*)(?P<value>[^\s,;'\"]+)",
    re.IGNORECASE,
)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Return `text` with URL passwords, key=secret pairs and known secret values masked."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return INLINE_SECRET.sub(lambda m: m.group("key") + MASK, text)


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """Return a copy of a JSON-like value with every secret masked.

    Values under a key that names a secret (password, token, secret_key...) are masked
    whole; other strings go through `redact_text`.
    """
    secrets = tuple(secrets)
    if isinstance(value, dict):
        return {
            key: MASK
            if isinstance(key, str) and SECRET_KEY_PATTERN.search(key) and item not in (None, "")
            else redact(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item, secrets) for item in value]
    if isinstance(value, str):
        return redact_text(value, secrets)
    return value
