import logging
import time
from itertools import islice

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from brokerproject.celery import enqueue_many, enqueue_safely
from brokerproject.redis_client import shared_redis
from brokerproject.retry import backoff

from . import zoom
from .models import CallbackHourStat, CallbackLog, ZoomConnection
from .services import connect, refresh
from .services.refresh import ConnectionUnusable

logger = logging.getLogger(__name__)

# Due connections are claimed in chunks: one Redis round trip per chunk.
CHUNK_SIZE = 100
# A claimed connection is not enqueued again by later ticks until its task ran (or this passed).
CLAIM_SECONDS = 15 * 60


def _batched(iterable, size: int):
    iterator = iter(iterable)
    while chunk := tuple(islice(iterator, size)):
        yield chunk


# SET NX EX for every key of a chunk in one call; returns the 1-based positions that were set.
_CLAIM_SCRIPT = """
local claimed = {}
for i, key in ipairs(KEYS) do
  if redis.call('set', key, 1, 'NX', 'EX', ARGV[1]) then claimed[#claimed + 1] = i end
end
return claimed
"""


def _claim(ids: tuple[int, ...]) -> list[int]:
    """The ids not already queued by an earlier tick, now marked as queued (one round trip)."""
    client = shared_redis()
    if client is None:
        return [pk for pk in ids if cache.add(f"refresh:queued:{pk}", 1, CLAIM_SECONDS)]
    positions = client.eval(_CLAIM_SCRIPT, len(ids), *(f"refresh:queued:{pk}" for pk in ids), CLAIM_SECONDS)
    return [ids[position - 1] for position in positions]


def _release(ids: list[int]) -> None:
    client = shared_redis()
    keys = [f"refresh:queued:{pk}" for pk in ids]
    if client is None:
        cache.delete_many(keys)
    elif keys:
        client.delete(*keys)


# A refresh task is never stopped by a time limit while Zoom may still answer its refresh: it may
# first wait for another process's lease (the lease, plus 5 s, at most), then refresh itself.
def _refresh_task_limit() -> int:
    return int(3 * settings.ZOOM_REFRESH_TIMEOUT + 60)


@shared_task(ignore_result=True)
def connections_refresh_due() -> int:
    """Beat's tick: claim every due connection and enqueue them in chunks, within half the tick.

    One message per chunk of CHUNK_SIZE (claims in Redis, one round trip per chunk), so the tick
    stays cheap however many are due; a worker turns each chunk into one refresh task per
    connection (connections_refresh_fan_out). Connections still queued from an earlier tick are
    skipped, so a backlog never doubles up; what does not fit in this tick's time is picked up by
    the next.
    """
    started = time.monotonic()
    deadline = settings.BEAT_REFRESH_INTERVAL / 2
    due = ZoomConnection.objects.due_for_refresh().order_by("access_token_expires_at").values_list("pk", flat=True)
    enqueued = 0
    for chunk in _batched(due.iterator(chunk_size=2000), CHUNK_SIZE):
        claimed = _claim(chunk)
        if claimed:
            if not enqueue_safely("zoomauth.tasks.connections_refresh_fan_out", claimed):
                _release(claimed)  # the broker went away: the next tick claims them again
                break
            enqueued += len(claimed)
        if time.monotonic() - started > deadline:
            break
    if enqueued:
        logger.info("refresh fan-out", extra={"due": enqueued})
    return enqueued


@shared_task(ignore_result=True, acks_late=True)
def connections_refresh_fan_out(connection_ids: list[int]) -> int:
    """A chunk of claimed connections: one refresh task each on the refresh queue, published over
    one broker connection. A refresh never shares a task (nor a time limit) with another."""
    sent = enqueue_many("zoomauth.tasks.connection_refresh", [(pk,) for pk in connection_ids])
    if sent < len(connection_ids):
        _release(connection_ids[sent:])  # the broker went away: the next tick claims them again
    return sent


@shared_task(
    ignore_result=True, acks_late=True, soft_time_limit=_refresh_task_limit(), time_limit=_refresh_task_limit() + 30
)
def connection_refresh(connection_id: int) -> None:
    """One connection, refreshed if still due. A failure is not retried here: the connection is
    still due, so the next tick takes it again, after Zoom's Retry-After when Zoom gave one
    (`refresh_not_before`, which due_for_refresh honours)."""
    try:
        refresh.connection_refresh_if_due(connection_id=connection_id)
    except ConnectionUnusable:
        pass
    except zoom.ZoomRetryableError as exc:
        logger.info("refresh will be retried by a later tick: %s", exc, extra={"connection": connection_id})
    except zoom.ZoomPermanentError as exc:
        logger.warning("refresh refused by Zoom: %s", exc, extra={"connection": connection_id})
    finally:
        _release([connection_id])


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=8)
def token_revoke_at_zoom(self, app_id: int, sealed_token: str) -> None:
    try:
        connect.token_revoke_at_zoom(app_id=app_id, sealed_token=sealed_token)
    except zoom.ZoomRetryableError as exc:
        raise self.retry(
            countdown=backoff(self.request.retries + 1, base=30.0, cap=900.0, retry_after=exc.retry_after)
        ) from None


@shared_task(ignore_result=True)
def callback_logs_prune() -> int:
    now = timezone.now()
    deleted, _ = CallbackLog.objects.expired(now=now).delete()
    CallbackHourStat.objects.filter(hour__lt=now - settings.CALLBACK_LOG_RETENTION).delete()
    return deleted


@shared_task(ignore_result=True)
def meeting_activity_prune() -> int:
    from .presence import meeting_activity_prune as prune

    return prune()
