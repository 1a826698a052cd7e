#!/bin/sh
# migrate: the one-shot service the others wait for. web: check the encryption key, serve.
# worker [queues]: check the key, run a Celery worker on the comma-separated queues (default:
# every queue). beat: check the key, run Celery beat.
set -e
case "$1" in
  migrate)
    python manage.py migrate --noinput
    exec python manage.py check_encryption
    ;;
  web)
    python manage.py check_encryption
    exec gunicorn brokerproject.wsgi:application -c docker/gunicorn.conf.py
    ;;
  worker)
    python manage.py check_encryption
    exec celery -A brokerproject worker --loglevel="${LOG_LEVEL:-INFO}" --concurrency="${WORKER_CONCURRENCY:-4}" \
      --queues="${2:-celery,refresh,zoom-events,customer-events,recall}" --hostname="${2:-all}@%h"
    ;;
  beat)
    python manage.py check_encryption
    exec celery -A brokerproject beat --loglevel="${LOG_LEVEL:-INFO}" --schedule=/app/var/celerybeat-schedule
    ;;
  *)
    exec "$@"
    ;;
esac
