#!/bin/sh
# Usage: web | worker | beat | sql-server | setup | migrate | healthcheck | <any command>
#   setup        migrations, then the Celery beat schedules (safe on every deploy)
#   healthcheck  the image's HEALTHCHECK: asks the process this container runs
set -e
role_file=/tmp/robson-role
case "$1" in
  web)
    echo web > "$role_file"
    python manage.py migrate --no-input
    exec python -m gunicorn config.wsgi:application --bind 0.0.0.0:8000 --workers "${WEB_WORKERS:-2}" ;;
  worker)
    echo worker > "$role_file"
    exec celery -A config worker --loglevel=INFO --concurrency "${WORKER_CONCURRENCY:-2}" ;;
  beat)
    echo beat > "$role_file"
    # Schedules live in the database (django-celery-beat); no local schedule file.
    exec celery -A config beat --loglevel=INFO ;;
  setup)
    python manage.py migrate --no-input
    exec python manage.py setup_schedules ;;
  sql-server)
    echo sql-server > "$role_file"
    exec python manage.py lake_sql_server ;;
  migrate)
    exec python manage.py migrate --no-input ;;
  healthcheck)
    case "$(cat "$role_file" 2>/dev/null)" in
      web) exec curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:8000/healthz ;;
      worker) exec celery -A config inspect ping --timeout 10 --destination "celery@$(hostname)" ;;
      # Beat is healthy while it can reach its schedules' database.
      beat) exec python manage.py check --database default --fail-level ERROR ;;
      *) exit 0 ;;  # a one-off command: nothing to watch
    esac ;;
  *)
    exec "$@" ;;
esac
