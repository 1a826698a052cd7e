from celery import shared_task
from django.utils import timezone

from .models import Heartbeat


@shared_task(ignore_result=True)
def heartbeat_record() -> None:
    Heartbeat.objects.update_or_create(name="beat", defaults={"beat_at": timezone.now()})
