"""Django settings: the only module that reads the environment.

Every value has an embedded default that needs no server (SQLite, a local lake directory,
Spark in local mode, a filesystem Celery broker); production overrides them with the
environment variables documented in the README's configuration table.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

VAR_DIR = Path(env.str("DATALAKE_VAR_DIR", default=str(BASE_DIR / "var")))

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key-change-me-in-production")
DEBUG = env.bool("DJANGO_DEBUG", default=True)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "rest_framework",
    "drf_spectacular",
    "api",
    "datalake",
]

MIDDLEWARE = [
    "config.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'robson.sqlite3'}")}
# Web and Celery workers keep their connection between requests (checked before reuse):
# opening one per request costs more than the features API's whole answer.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so that subprocesses started by tests (Celery workers,
    # exporters killed mid-run) see the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-robson.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 30)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "datalake": {"handlers": ["console"], "level": env.str("DATALAKE_LOG_LEVEL", "INFO")},
    },
}

# --- Celery -----------------------------------------------------------------------------
# The default broker is kombu's filesystem transport: no server, works across processes.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND", default=f"file://{VAR_DIR / 'celery' / 'results'}"
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
    _queue_dir.mkdir(parents=True, exist_ok=True)
if CELERY_RESULT_BACKEND.startswith("file://"):
    Path(CELERY_RESULT_BACKEND.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Data lake (read by datalake/conf.py, which holds the defaults) ----------------------
DATALAKE_URI = env.str("DATALAKE_URI", default=str(VAR_DIR / "lake"))
DATALAKE_S3_ENDPOINT_URL = env.str("DATALAKE_S3_ENDPOINT_URL", default="") or None
DATALAKE_S3_REGION = env.str("DATALAKE_S3_REGION", default="us-east-1")
DATALAKE_S3_ADDRESSING_STYLE = env.str("DATALAKE_S3_ADDRESSING_STYLE", default="auto")
DATALAKE_WORK_DIR = env.str("DATALAKE_WORK_DIR", default=str(VAR_DIR / "work"))
DATALAKE_SPARK_MASTER = env.str("SPARK_MASTER", default="local[*]")
DATALAKE_SPARK_DEPLOY_MODE = env.str("SPARK_DEPLOY_MODE", default="client")
DATALAKE_SPARK_DRIVER_MEMORY = env.str("SPARK_DRIVER_MEMORY", default="2g")
DATALAKE_SPARK_EXECUTOR_MEMORY = env.str("SPARK_EXECUTOR_MEMORY", default="2g")
DATALAKE_SPARK_SUBMIT = env.str("SPARK_SUBMIT", default="") or None
DATALAKE_SPARK_CONF = env.dict("SPARK_CONF", default={})
DATALAKE_SPARK_CLASS_ARCHIVE_DIR = env.str("SPARK_CLASS_ARCHIVE_DIR", default="") or None
DATALAKE_SPARK_DAILY_JAVA_OPTIONS = env.str(
    "SPARK_DAILY_JAVA_OPTIONS", default="-XX:TieredStopAtLevel=1"
)

# Values that must never reach a log, an admin page or a job record: every JobRun text
# is scrubbed of them (datalake/redaction.py). "SECRET" in the name also hides the list
# from Django's error pages.
DATALAKE_SECRET_VALUES = [
    value
    for value in (
        env.str("AWS_SECRET_ACCESS_KEY", default=""),
        env.str("AWS_SESSION_TOKEN", default=""),
        env.str("SQL_SERVER_TOKEN", default=""),
        DATABASES["default"].get("PASSWORD", ""),
        SECRET_KEY,
    )
    if value and len(value) >= 4
]
DATALAKE_EXPORT_BATCH_SIZE = env.int("DATALAKE_EXPORT_BATCH_SIZE", default=100_000)
DATALAKE_GAP_SETTLE_SECONDS = env.int("DATALAKE_GAP_SETTLE_SECONDS", default=600)

# --- Schedules and alerts ---------------------------------------------------------------
DATALAKE_SCHEDULE_MAX_FAILURES = env.int("DATALAKE_SCHEDULE_MAX_FAILURES", default=3)
DATALAKE_FEATURES_REFRESH_EVERY = env.str("DATALAKE_FEATURES_REFRESH_EVERY", default="15m")
# --- Online features (datalake/features.py, datalake/api.py) ---
DATALAKE_FEATURES_MAX_AGE_SECONDS = env.int("DATALAKE_FEATURES_MAX_AGE_SECONDS", default=7200)
DATALAKE_FEATURES_REDIS_URL = env.str("DATALAKE_FEATURES_REDIS_URL", default="")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # The feature cache: local memory (nothing to run) unless a Redis URL is given.
    "features": (
        {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": DATALAKE_FEATURES_REDIS_URL,
            "TIMEOUT": None,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25},
        }
        if DATALAKE_FEATURES_REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "datalake-features",
            "TIMEOUT": None,
            "OPTIONS": {"MAX_ENTRIES": 1_000_000, "CULL_FREQUENCY": 10},
        }
    ),
}
# The stand-in backend keeps a user's client on a membership row (Robson: user.client).
DATALAKE_USER_CLIENT = "client_membership.client"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
    # JSON only: a browser's Accept header must not turn an answer or an error into
    # the browsable API's HTML page.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Robson data lake API",
    "DESCRIPTION": "Online features of the Robson data lake.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}
DATALAKE_ALERT_WEBHOOK_URL = env.str("DATALAKE_ALERT_WEBHOOK_URL", default="")
DATALAKE_ALERT_EMAILS = env.list("DATALAKE_ALERT_EMAILS", default=[])
# Alert e-mails go through Django's mail settings (EMAIL_HOST...; console by default).
EMAIL_BACKEND = env.str(
    "DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = env.str("DJANGO_EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("DJANGO_EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("DJANGO_EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("DJANGO_EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("DJANGO_EMAIL_USE_TLS", default=False)
# A webhook URL often carries its token; neither may reach a job record.
DATALAKE_SECRET_VALUES += [v for v in (EMAIL_HOST_PASSWORD, DATALAKE_ALERT_WEBHOOK_URL) if v]
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="datalake@localhost")
# The SQL endpoint (lake_sql_server) and where lake_sql finds it.
DATALAKE_SQL_SERVER_URL = env.str("SQL_SERVER_URL", default="") or None
DATALAKE_SQL_SERVER_HOST = env.str("SQL_SERVER_HOST", default="127.0.0.1")
DATALAKE_SQL_SERVER_PORT = env.int("SQL_SERVER_PORT", default=15002)
DATALAKE_SQL_SERVER_TOKEN = env.str("SQL_SERVER_TOKEN", default="") or None
DATALAKE_SQL_SERVER_CORES = env.int("SQL_SERVER_CORES", default=2)
DATALAKE_SQL_SERVER_MEMORY = env.str("SQL_SERVER_MEMORY", default="2g")
DATALAKE_SQL_SERVER_REFRESH_SECONDS = env.float("SQL_SERVER_REFRESH_SECONDS", default=10.0)
DATALAKE_SQL_SERVER_QUERY_TIMEOUT = env.float("SQL_SERVER_QUERY_TIMEOUT", default=300.0)
DATALAKE_SQL_SERVER_THRIFT_PORT = env.int("SQL_SERVER_THRIFT_PORT", default=0)
