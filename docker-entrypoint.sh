#!/bin/sh
# Usage: web | worker | beat | sql-server | migrate | <any command>
set -e
case "$1" in
  web)
    python manage.py migrate --no-input
    exec python -m gunicorn config.wsgi:application --bind 0.0.0.0:8000 --workers "${WEB_WORKERS:-2}" ;;
  worker)
    exec celery -A config worker --loglevel=INFO --concurrency "${WORKER_CONCURRENCY:-2}" ;;
  beat)
    exec celery -A config beat --loglevel=INFO ;;
  sql-server)
    exec python manage.py lake_sql_server ;;
  migrate)
    exec python manage.py migrate --no-input ;;
  *)
    exec "$@" ;;
esac
