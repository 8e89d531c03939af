"""The datalake app's settings, with their defaults: the one place the app reads them.

Each name is `DATALAKE_<NAME>` in Django settings; `app_settings.NAME` returns the
configured value or the default below, read at access time so tests can override it.
"""

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "URI": "var/lake",
    "S3_ENDPOINT_URL": None,
    "S3_REGION": "us-east-1",
    "S3_ADDRESSING_STYLE": "auto",
    "WORK_DIR": "var/work",
    "SPARK_MASTER": "local[*]",
    "SPARK_DEPLOY_MODE": "client",
    "SPARK_DRIVER_MEMORY": "2g",
    "SPARK_EXECUTOR_MEMORY": "2g",
    "SPARK_SUBMIT": "spark-submit",
    "SPARK_CONF": {},
    "SECRET_VALUES": [],
}


class AppSettings:
    """Attribute access to DATALAKE_* settings with the defaults above."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown datalake setting {name!r}")
        return getattr(settings, f"DATALAKE_{name}", DEFAULTS[name])


app_settings = AppSettings()
