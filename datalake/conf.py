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
    # None: the spark-submit of the installed pyspark (datalake/spark/submit.py).
    "SPARK_SUBMIT": None,
    "SPARK_CONF": {},
    # Class-data archive of the driver JVM (datalake/spark/classdata.py): None for
    # <WORK_DIR>/spark/classes, "off" for none.
    "SPARK_CLASS_ARCHIVE_DIR": None,
    # Driver JVM options of daily (incremental) runs only: they last seconds, so a JIT
    # that compiles quickly (C1 only) beats one that compiles well.
    "SPARK_DAILY_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1",
    "SECRET_VALUES": [],
    # Which model feeds each bronze dataset: model label, and for each bronze column the
    # model field (attname or lookup path) that feeds it; columns not listed are fed by
    # the field of the same name. `include` keeps only rows whose column is in the list.
    "SOURCES": {
        "events": {"model": "api.StopEvent"},
        "orders": {
            "model": "api.AuditTransaction",
            "fields": {"strategy_id": "related_operation__strategy_id"},
            "include": {"transaction_type": ["MARGIN_BUY", "MARGIN_SELL", "SPOT_BUY", "SPOT_SELL"]},
        },
        "trades": {
            "model": "api.Trade",
            "fields": {
                "row_id": "id",
                "id": "trade_id",
                "orderId": "order_id",
                "orderListId": "order_list_id",
                "quoteQty": "quote_qty",
                "commissionAsset": "commission_asset",
                "isBuyer": "is_buyer",
                "isMaker": "is_maker",
                "isBestMatch": "is_best_match",
            },
        },
        "portfolio": {"model": "api.Portfolio"},
        "klines": {"model": "api.Kline", "fields": {"row_id": "id"}},
    },
    "EXPORT_BATCH_SIZE": 100_000,
    "GAP_SETTLE_SECONDS": 600,
    "LOCK_TTL_SECONDS": 900,
    # --- Schedules and alerts (datalake/schedules.py, datalake/notify.py) ---
    # A schedule pauses itself after this many consecutive failed runs.
    "SCHEDULE_MAX_FAILURES": 3,
    # Interval of the online features refresh, as a schedule spec ("15m", "1h", cron).
    "FEATURES_REFRESH_EVERY": "15m",
    # --- Online features (datalake/features.py) ---
    # The cache alias serving them, and how old (now - as_of) values may be before STALE.
    "FEATURES_CACHE": "features",
    "FEATURES_MAX_AGE_SECONDS": 7200,
    # How to find a user's client: an attribute path ("client", "profile.client") or a
    # dotted callable "module:function" taking the user, returning a client or its id.
    "USER_CLIENT": "client",
    # The permission that lets staff read any client's features.
    "FEATURES_READ_ANY_PERMISSION": "datalake.read_any_features",
    # {schedule name: spec} replacing the specs in the code's table, e.g. {"bronze-ingest": "30m"}.
    "SCHEDULE_OVERRIDES": {},
    "ALERT_WEBHOOK_URL": "",
    "ALERT_EMAILS": [],
    "ALERT_TIMEOUT_SECONDS": 5,
}


class AppSettings:
    """Attribute access to DATALAKE_* settings with the defaults above."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown datalake setting {name!r}")
        return getattr(settings, f"DATALAKE_{name}", DEFAULTS[name])


app_settings = AppSettings()
