"""The Redis every web, worker and beat process shares, for state that must hold across them:
throttle counters and the token single-flight. None in the embedded default (no REDIS_URL),
where one machine runs everything and callers fall back to process-local state."""

from functools import cache

import redis
from django.conf import settings


@cache
def shared_redis() -> redis.Redis | None:
    if not settings.REDIS_URL:
        return None
    # Blocking waits (BLPOP) last up to the callback budget: the socket timeout must outlast them.
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=1,
        socket_timeout=settings.CALLBACK_TIME_BUDGET + 2,
        health_check_interval=30,
    )
