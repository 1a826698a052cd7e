import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerproject.settings")

app = Celery("brokerproject")
# Everything, the beat schedule included, comes from the CELERY_* settings.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
