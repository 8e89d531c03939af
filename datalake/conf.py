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
    # The SQL endpoint (datalake/sql/endpoint.py). URL None: lake_sql looks for one this
    # machine's lake_sql_server started. A HOST other than loopback requires TOKEN.
    "SQL_SERVER_URL": None,
    "SQL_SERVER_HOST": "127.0.0.1",
    "SQL_SERVER_PORT": 15002,
    "SQL_SERVER_TOKEN": None,
    "SQL_SERVER_CORES": 2,
    "SQL_SERVER_MEMORY": "2g",
    # Seconds between two refreshes of the endpoint's tables (new datasets, partitions).
    "SQL_SERVER_REFRESH_SECONDS": 10.0,
    # Spark jobs of the endpoint running longer than this are cancelled (0: no limit).
    "SQL_SERVER_QUERY_TIMEOUT": 300.0,
    # JDBC/ODBC (HiveServer2 protocol) port of the endpoint, on loopback; 0: off.
    "SQL_SERVER_THRIFT_PORT": 0,
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
    # Retention, in days, per dataset family (quarantine follows bronze); families not
    # listed (gold.training_sets) are kept indefinitely.
    "RETENTION_DAYS": {"bronze": 90, "silver": 365, "gold.features": 90},
    # How long monitoring samples (DatasetStatus, charted over time) are kept, in days.
    "STATUS_HISTORY_DAYS": 90,
    # Freshness contracts (maximum lag of the newest data, seconds) by dataset or family;
    # datasets without one are shown but never breach.
    "FRESHNESS_MAX_LAG": {
        "bronze.events": 2 * 3600,
        "silver": 24 * 3600,
        "gold": 7 * 24 * 3600,
    },
}


class AppSettings:
    """Attribute access to DATALAKE_* settings with the defaults above."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown datalake setting {name!r}")
        return getattr(settings, f"DATALAKE_{name}", DEFAULTS[name])


app_settings = AppSettings()
