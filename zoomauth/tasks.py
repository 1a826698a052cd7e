import logging

from celery import shared_task
from django.utils import timezone

from . import zoom
from .models import CallbackLog, ZoomConnection
from .services import ConnectionUnusable, connection_refresh_if_due

logger = logging.getLogger(__name__)

# Beat enqueues at most this many per tick; the rest are picked up on the next ticks.
FAN_OUT_LIMIT = 1000


@shared_task(ignore_result=True)
def refresh_due_connections() -> int:
    ids = list(
        ZoomConnection.objects.due_for_refresh()
        .order_by("access_token_expires_at")
        .values_list("pk", flat=True)[:FAN_OUT_LIMIT]
    )
    for connection_id in ids:
        refresh_connection.delay(connection_id)
    if ids:
        logger.info("refresh fan-out", extra={"due": len(ids)})
    return len(ids)


@shared_task(bind=True, ignore_result=True, max_retries=8, acks_late=True)
def refresh_connection(self, connection_id: int) -> None:
    try:
        connection_refresh_if_due(connection_id=connection_id)
    except ConnectionUnusable:
        return
    except zoom.ZoomRetryableError as exc:
        countdown = exc.retry_after if exc.retry_after is not None else min(900, 30 * 2**self.request.retries)
        raise self.retry(countdown=countdown) from None
    except zoom.ZoomPermanentError as exc:
        logger.warning("refresh refused by Zoom: %s", exc, extra={"connection": connection_id})


@shared_task(ignore_result=True)
def prune_callback_logs() -> int:
    deleted, _ = CallbackLog.objects.expired(now=timezone.now()).delete()
    return deleted
