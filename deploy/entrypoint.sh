#!/bin/sh
# Mamoru's container entrypoint: one image, one role per container.
#   web        gunicorn with governance/gunicorn_conf.py on $GUNICORN_BIND (0.0.0.0:8000)
#   worker     a Celery worker (no beat: any number of these)
#   scheduler  Celery beat: exactly ONE per deployment (two would run every periodic job twice)
#   migrate    migrate the main database and the key store (idempotent; run before a new version)
#   manage …   any manage.py command (createsuperuser, rotate_keys, verify_chains …)
# Anything else is executed as given.
set -eu

APP_DIR="${MAMORU_APP_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
PYTHON="${PYTHON:-python}"
cd "$APP_DIR"

role="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$role" in
  web)
    if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
      # gunicorn's workers add up their metrics through files here; stale files of an earlier
      # run would be counted again.
      mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
      find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -maxdepth 1 -name '*.db' -delete
    fi
    exec "$PYTHON" -m gunicorn -c python:governance.gunicorn_conf \
      --bind "${GUNICORN_BIND:-0.0.0.0:8000}" "$@"
    ;;
  worker)
    exec "$PYTHON" -m celery -A governance worker -l "${LOG_LEVEL:-INFO}" \
      --concurrency "${CELERY_CONCURRENCY:-2}" "$@"
    ;;
  scheduler)
    exec "$PYTHON" -m celery -A governance beat -l "${LOG_LEVEL:-INFO}" \
      --schedule "${CELERY_BEAT_SCHEDULE_FILE:-${MAMORU_VAR_DIR:-/tmp}/celerybeat-schedule}" "$@"
    ;;
  migrate)
    "$PYTHON" manage.py migrate --noinput "$@"
    exec "$PYTHON" manage.py migrate --database keystore --noinput "$@"
    ;;
  manage)
    exec "$PYTHON" manage.py "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
