import os
from datetime import timedelta

from celery import Celery
from celery.schedules import crontab
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerproject.settings")

app = Celery("brokerproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The schedule lives in code so that every deployment runs the same one. Run exactly one beat
# process; every task it sends is idempotent, so a duplicate tick does no harm.
app.conf.beat_schedule = {
    "heartbeat": {
        "task": "accounts.tasks.record_heartbeat",
        "schedule": timedelta(seconds=settings.BEAT_HEARTBEAT_INTERVAL),
    },
    "refresh-due-connections": {
        "task": "zoomauth.tasks.refresh_due_connections",
        "schedule": timedelta(seconds=settings.BEAT_REFRESH_INTERVAL),
    },
    "prune-callback-logs": {"task": "zoomauth.tasks.prune_callback_logs", "schedule": crontab(minute=17, hour=3)},
    "sweep-webhook-deliveries": {
        "task": "webhooks.tasks.sweep_pending_deliveries",
        "schedule": timedelta(seconds=settings.BEAT_SWEEP_INTERVAL),
    },
    "sync-recall-credentials": {
        "task": "recallbots.tasks.sync_credential_statuses",
        "schedule": timedelta(minutes=15),
    },
}
