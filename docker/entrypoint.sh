#!/bin/sh
# web: migrate, check the encryption key, serve. worker / beat: check the key, run Celery.
set -e
case "$1" in
  web)
    python manage.py migrate --noinput
    python manage.py check_encryption
    exec gunicorn brokerproject.wsgi:application -c docker/gunicorn.conf.py
    ;;
  worker)
    python manage.py check_encryption
    exec celery -A brokerproject worker --loglevel="${LOG_LEVEL:-INFO}" --concurrency="${WORKER_CONCURRENCY:-4}"
    ;;
  beat)
    python manage.py check_encryption
    exec celery -A brokerproject beat --loglevel="${LOG_LEVEL:-INFO}" --schedule=/app/var/celerybeat-schedule
    ;;
  *)
    exec "$@"
    ;;
esac
