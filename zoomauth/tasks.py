import logging
import time
from itertools import islice

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from brokerproject.redis_client import shared_redis

from . import services, zoom
from .models import CallbackLog, ZoomConnection
from .services import ConnectionUnusable

logger = logging.getLogger(__name__)

# Due connections are enqueued in chunks: one task, and one broker round trip, per chunk.
CHUNK_SIZE = 100
# A claimed connection is not enqueued again by later ticks until its chunk ran (or this passed).
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


@shared_task(ignore_result=True)
def connections_refresh_due() -> int:
    """Beat's tick: enqueue every due connection in chunks, within half the tick's interval.

    Connections still queued from an earlier tick are skipped, so a backlog (after an outage,
    or 100 000 users connected on one day) never doubles up; what does not fit in this tick's
    time is picked up by the next.
    """
    started = time.monotonic()
    deadline = settings.BEAT_REFRESH_INTERVAL / 2
    due = ZoomConnection.objects.due_for_refresh().order_by("access_token_expires_at").values_list("pk", flat=True)
    enqueued = 0
    for chunk in _batched(due.iterator(chunk_size=2000), CHUNK_SIZE):
        claimed = _claim(chunk)
        if claimed:
            connections_refresh_if_due.delay(claimed)
            enqueued += len(claimed)
        if time.monotonic() - started > deadline:
            break
    if enqueued:
        logger.info("refresh fan-out", extra={"due": enqueued})
    return enqueued


@shared_task(ignore_result=True, acks_late=True)
def connections_refresh_if_due(connection_ids: list[int]) -> None:
    """A chunk: each connection refreshed if still due; a retryable failure retries on its own."""
    try:
        for connection_id in connection_ids:
            try:
                services.connection_refresh_if_due(connection_id=connection_id)
            except ConnectionUnusable:
                continue
            except zoom.ZoomRetryableError as exc:
                countdown = exc.retry_after if exc.retry_after is not None else 30
                connection_refresh_if_due.apply_async((connection_id,), countdown=countdown)
            except zoom.ZoomPermanentError as exc:
                logger.warning("refresh refused by Zoom: %s", exc, extra={"connection": connection_id})
    finally:
        _release(connection_ids)


@shared_task(bind=True, ignore_result=True, max_retries=8, acks_late=True)
def connection_refresh_if_due(self, connection_id: int) -> None:
    try:
        services.connection_refresh_if_due(connection_id=connection_id)
    except ConnectionUnusable:
        return
    except zoom.ZoomRetryableError as exc:
        countdown = exc.retry_after if exc.retry_after is not None else min(900, 30 * 2**self.request.retries)
        raise self.retry(countdown=countdown) from None
    except zoom.ZoomPermanentError as exc:
        logger.warning("refresh refused by Zoom: %s", exc, extra={"connection": connection_id})


@shared_task(ignore_result=True)
def callback_logs_prune() -> int:
    deleted, _ = CallbackLog.objects.expired(now=timezone.now()).delete()
    return deleted
