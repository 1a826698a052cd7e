"""Constant-cost rate limits shared by every process: one counter per key and window.

DRF's SimpleRateThrottle keeps a list of every request's timestamp per key and reads and
rewrites it on each request (up to a rate's worth of entries, twice for two throttles). A fixed
window costs one pipelined INCR + EXPIRE in Redis, whatever the rate. Its known edge (up to
twice the rate across a window boundary) is acceptable for abuse limits.
"""

import functools
import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import cast

import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from .redis_client import quick_redis, redis_available, redis_failed


def client_address(request) -> str:
    """The caller's address through NUM_PROXIES trusted proxies (X-Forwarded-For), as DRF sees it.
    Used by the callback throttles and the audit, and by django-axes for sign-in lockouts."""
    return BaseThrottle().get_ident(request)


def client_ip(request) -> str | None:
    """client_address as an IP address for a GenericIPAddressField, or None when it is not one."""
    ident = client_address(request)
    try:
        ipaddress.ip_address(ident)
    except ValueError:
        return None
    return ident


def parse_rate(rate: str) -> tuple[int, int]:
    """'600/min' → (600, 60). DRF's parser: s, m, h and d by their first letter."""
    # Called unbound: parse_rate reads nothing of the throttle. A str rate parses to two ints
    # (only a None rate gives (None, None)).
    parsed = SimpleRateThrottle.parse_rate(None, rate)  # type: ignore[arg-type]
    return cast("tuple[int, int]", parsed)


@dataclass(frozen=True)
class Window:
    key: str
    limit: int
    period: int

    @classmethod
    def for_rate(cls, scope: str, ident: str, rate: str, *, now: float | None = None) -> "Window":
        limit, period = parse_rate(rate)
        index = int((now if now is not None else time.time()) // period)
        return cls(key=f"throttle:{scope}:{ident}:{index}", limit=limit, period=period)

    def retry_after(self, *, now: float | None = None) -> int:
        now = now if now is not None else time.time()
        return max(1, int(self.period - now % self.period) + 1)


def counts(windows: list[Window], *, increment: list[bool]) -> list[int]:
    """The current count of each window, adding one to those flagged, in one round trip.

    Redis away: counted per process instead (a limit then holds per process, not per
    deployment), never refused for want of Redis."""
    if not settings.REDIS_URL:
        return [_local_count(window, bump) for window, bump in zip(windows, increment, strict=True)]
    if redis_available():
        try:
            return _redis_counts(quick_redis(), windows, increment)  # connects when the thread's client is new
        except redis.RedisError as exc:
            redis_failed(exc)
    return [_process_counts.count(window, bump) for window, bump in zip(windows, increment, strict=True)]


# One EVALSHA instead of a pipeline of INCR + EXPIRE / GET per window: a third of the Python work
# per call in redis-py (one command packed and one reply parsed), and the expiry is set once, when
# a window's key is made. KEYS are the windows; ARGV[i] is the expiry of KEYS[i] when it is counted,
# "" when it is only read.
_COUNT = """
local counts = {}
for i, key in ipairs(KEYS) do
  if ARGV[i] ~= "" then
    local n = redis.call("INCR", key)
    if n == 1 then redis.call("EXPIRE", key, ARGV[i]) end
    counts[i] = n
  else
    counts[i] = tonumber(redis.call("GET", key) or "0")
  end
end
return counts
"""


@functools.lru_cache(maxsize=512)  # one per client: a client per thread (quick_redis)
def _count_script(client):
    return client.register_script(_COUNT)


def _redis_counts(client, windows: list[Window], increment: list[bool]) -> list[int]:
    expiries = [str(window.period + 1) if bump else "" for window, bump in zip(windows, increment, strict=True)]
    return [int(n) for n in _count_script(client)(keys=[window.key for window in windows], args=expiries)]


class _ProcessCounters:
    """Fixed windows in this process's memory, for while Redis is away."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counters: dict[str, tuple[float, int]] = {}  # key -> (expires, count)

    def count(self, window: Window, bump: bool) -> int:
        now = time.monotonic()
        with self.lock:
            if len(self.counters) > 50_000:  # windows past their period are dropped
                self.counters = {k: v for k, v in self.counters.items() if v[0] > now}
            expires, value = self.counters.get(window.key, (now + window.period + 1, 0))
            if expires <= now:
                expires, value = now + window.period + 1, 0
            if bump:
                value += 1
                self.counters[window.key] = (expires, value)
            return value


_process_counts = _ProcessCounters()


def _local_count(window: Window, bump: bool) -> int:
    """Without Redis (the embedded default, one machine): Django's cache, good enough there."""
    if not bump:
        return int(cache.get(window.key) or 0)
    if cache.add(window.key, 1, window.period + 1):
        return 1
    try:
        return cache.incr(window.key)
    except ValueError:
        cache.set(window.key, 1, window.period + 1)
        return 1
