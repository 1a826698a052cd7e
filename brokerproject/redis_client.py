"""The Redis every web, worker and beat process shares, for state that must hold across them:
throttle counters and the token single-flight. None in the embedded default (no REDIS_URL),
where one machine runs everything and callers fall back to process-local state.

Redis is a dependency that degrades, not one that fails: a caller that meets a RedisError calls
`redis_failed()` and falls back to process-local state; for REDIS_RETRY_SECONDS after that,
`redis_available()` says no without a round trip, so a Redis that hangs costs one short timeout
per process, not one per request.
"""

import logging
import threading
import time
from functools import cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

# After a failure, Redis is not tried again by this process for this long.
REDIS_RETRY_SECONDS = 5.0

_down_until = 0.0
_lock = threading.Lock()


@cache
def shared_redis() -> redis.Redis | None:
    if not settings.REDIS_URL:
        return None
    # Blocking waits (BLPOP) last up to the callback budget: the socket timeout must outlast them.
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=0.5,
        socket_timeout=settings.CALLBACK_TIME_BUDGET + 2,
        health_check_interval=30,
    )


_per_thread = threading.local()
_generation = 0  # forget_clients() makes every thread build its client anew


def quick_redis() -> redis.Redis | None:
    """For single commands on the hot path (throttle counters): a Redis that does not answer
    within half a second counts as away.

    One client per thread, each on a connection of its own (`single_connection_client`): a shared
    pool's checkout and return (a lock, a pid check, a poll of the socket) was half of redis-py's
    work per throttle call in a profile of fresh-connection callbacks (bench/profile.py). A web
    process holds one connection per thread that has counted (WEB_THREADS at most). Making one
    connects at once: a Redis that is away raises redis.RedisError here, as a command would."""
    if not settings.REDIS_URL:
        return None
    held = getattr(_per_thread, "client", None)
    if held is None or held[0] != (settings.REDIS_URL, _generation):
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=0.25, socket_timeout=0.5, single_connection_client=True
        )
        held = _per_thread.client = ((settings.REDIS_URL, _generation), client)
    return held[1]


def forget_clients() -> None:
    """Tests that point REDIS_URL elsewhere: every client is made again from the settings."""
    global _generation
    shared_redis.cache_clear()
    _generation += 1


def redis_available() -> bool:
    return time.monotonic() >= _down_until


def redis_failed(exc: Exception) -> None:
    global _down_until
    with _lock:
        first = time.monotonic() >= _down_until
        _down_until = time.monotonic() + REDIS_RETRY_SECONDS
    if first:
        logger.warning("redis is away; falling back to process-local state: %s", type(exc).__name__)
