"""One caller computes a value; every concurrent caller, in any process, gets that caller's result.

Used for ZAKs: a meeting with 100 bots for one host must cost Zoom one call, not 100.

With Redis (every deployment that has more than one process):
- the value is shared for `share_seconds` under `sf:<key>:value` (encrypted: it is a token);
- a flight is a `SET NX` lock whose value is the flight id. The winner re-checks the shared value
  (a flight may have just ended), computes, then in one MULTI stores the value, stores the
  flight's result (value or error) and reads how many waiters joined; it pushes that many copies
  of the result onto the flight's list;
- a waiter, in one MULTI, joins the flight (INCR) and reads its result; if there is none yet it
  blocks on BLPOP for its copy. Either the waiter joined before the winner read the count (it
  gets a copy) or after the result was stored (it reads it): no waiter is missed, none polls;
- a failure is a result too: waiters receive the winner's error instead of calling Zoom, and
  so do callers for ERROR_SHARE_SECONDS after it.

Without Redis (the embedded default: one web process), or while Redis is away, the same happens
with the threads of one process: a ZAK herd then costs one Zoom call per process, not one per bot.
"""

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.core.cache import cache
from encrypted_model_fields.fields import decrypt_str, encrypt_str

from brokerproject.redis_client import redis_available, redis_failed, shared_redis

RESULT_SECONDS = 15
# A failure is shared for this long too: callers arriving just after a failed flight get its
# error instead of each trying again (a herd spread over a second must not become a stampede).
ERROR_SHARE_SECONDS = 3

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class FlightError(Exception):
    """The winner's failure, as every waiter of its flight receives it."""

    def __init__(self, payload: dict):
        super().__init__(payload.get("message", ""))
        self.payload = payload


class FlightTimeout(Exception):
    """No result arrived within the caller's wait."""


@dataclass
class SingleFlight:
    share_seconds: int
    lock_seconds: float

    def run(self, key: str, compute: Callable[[], str], *, wait: float, on_error: Callable[[Exception], dict]) -> str:
        """The shared value for `key`, computing it at most once at a time across processes.

        `on_error` turns the winner's exception into a JSON-able payload for the waiters, who
        receive it as FlightError. The winner itself sees its own exception.
        """
        client = shared_redis()
        if client is None or not redis_available():
            return _local.run(key, compute, wait=wait, on_error=on_error, share_seconds=self.share_seconds)
        try:
            return self._run_shared(client, key, compute, wait=wait, on_error=on_error)
        except _RedisAway:
            return _local.run(key, compute, wait=wait, on_error=on_error, share_seconds=self.share_seconds)

    def _run_shared(self, client, key: str, compute, *, wait: float, on_error) -> str:
        try:
            return self._join_or_lead(client, key, compute, wait=wait, on_error=on_error)
        except redis.RedisError as exc:  # before any value was computed: start over without Redis
            redis_failed(exc)
            raise _RedisAway() from None

    def _join_or_lead(self, client, key: str, compute, *, wait: float, on_error) -> str:
        value_key, lock_key = f"sf:{key}:value", f"sf:{key}:lock"
        error_key = f"sf:{key}:error"
        for _ in range(3):
            cached, failed = client.mget(value_key, error_key)
            if cached:
                return decrypt_str(cached.decode())
            if failed:
                raise FlightError(json.loads(failed))
            flight = uuid.uuid4().hex
            if client.set(lock_key, flight, nx=True, px=int(self.lock_seconds * 1000)):
                return self._lead(client, key, flight, compute, on_error)
            current = client.get(lock_key)
            if current is None:
                continue  # the flight ended between our two reads: look at the value again
            return self._follow(client, key, current.decode(), wait)
        raise FlightTimeout("no flight could be joined")

    def _lead(self, client, key: str, flight: str, compute, on_error) -> str:
        value_key = f"sf:{key}:value"
        error: Exception | None = None
        try:
            cached = client.get(value_key)
            value = decrypt_str(cached.decode()) if cached else compute()
            payload = {"value": encrypt_str(value).decode()}
        except Exception as exc:  # noqa: BLE001 - handed to the waiters, then re-raised
            error = exc
            payload = {"error": on_error(exc)}
        try:
            self._publish(client, key, flight, payload)
        except redis.RedisError as exc:  # the value is ours all the same; waiters time out
            redis_failed(exc)
        if error is not None:
            raise error
        return value

    def _publish(self, client, key: str, flight: str, payload: dict) -> None:
        value_key, lock_key = f"sf:{key}:value", f"sf:{key}:lock"
        encoded = json.dumps(payload)
        pipe = client.pipeline(transaction=True)
        if "value" in payload:
            pipe.set(value_key, payload["value"], ex=self.share_seconds)
        else:
            pipe.set(f"sf:{key}:error", json.dumps(payload["error"]), ex=ERROR_SHARE_SECONDS)
        pipe.set(f"sf:{key}:{flight}:result", encoded, ex=RESULT_SECONDS)
        pipe.get(f"sf:{key}:{flight}:waiters")
        waiters = int(pipe.execute()[-1] or 0)
        pipe = client.pipeline(transaction=False)
        if waiters:
            pipe.rpush(f"sf:{key}:{flight}:done", *([encoded] * waiters))
            pipe.expire(f"sf:{key}:{flight}:done", RESULT_SECONDS)
        pipe.eval(_RELEASE, 1, lock_key, flight)
        pipe.execute()

    def _follow(self, client, key: str, flight: str, wait: float) -> str:
        pipe = client.pipeline(transaction=True)
        pipe.incr(f"sf:{key}:{flight}:waiters")
        pipe.expire(f"sf:{key}:{flight}:waiters", RESULT_SECONDS)
        pipe.get(f"sf:{key}:{flight}:result")
        encoded = pipe.execute()[-1]
        if encoded is None:
            if wait < 0.05:
                raise FlightTimeout("no time left to wait for the shared result")
            popped = client.blpop([f"sf:{key}:{flight}:done"], timeout=wait)
            if popped is None:
                raise FlightTimeout("the shared result did not arrive in time")
            encoded = popped[1]
        return _unpack(json.loads(encoded))


class _RedisAway(Exception):
    pass


def forget(key: str) -> None:
    """Drop a shared value, so the next caller computes a fresh one."""
    _local.forget(key)
    client = shared_redis()
    if client is not None:
        try:
            client.delete(f"sf:{key}:value", f"sf:{key}:error")
        except redis.RedisError as exc:
            redis_failed(exc)


def _unpack(payload: dict) -> str:
    if "error" in payload:
        raise FlightError(payload["error"])
    return decrypt_str(payload["value"])


class _LocalFlights:
    """Threads of one process: the embedded default's single web process, or any process while
    Redis is away. Values live in Django's cache without Redis (the file cache every process of
    the embedded default shares), in this process's memory when Redis is configured but away."""

    def __init__(self):
        self.lock = threading.Lock()
        self.flights: dict[str, tuple[threading.Event, dict]] = {}
        self.values: dict[str, tuple[float, str]] = {}
        self.errors: dict[str, tuple[float, dict]] = {}

    def _get(self, key: str) -> str | None:
        if shared_redis() is None:
            return cache.get(f"sf:{key}:value")
        expires, value = self.values.get(key, (0.0, None))
        return value if expires > time.monotonic() else None

    def _set(self, key: str, value: str, seconds: int) -> None:
        if shared_redis() is None:
            cache.set(f"sf:{key}:value", value, seconds)
        else:
            self.values[key] = (time.monotonic() + seconds, value)

    def forget(self, key: str) -> None:
        self.values.pop(key, None)
        self.errors.pop(key, None)
        if shared_redis() is None:
            cache.delete(f"sf:{key}:value")

    def run(self, key, compute, *, wait, on_error, share_seconds) -> str:
        cached = self._get(key)
        if cached:
            return decrypt_str(cached)
        expires, error = self.errors.get(key, (0.0, None))
        if error is not None and expires > time.monotonic():
            raise FlightError(error)
        with self.lock:
            flight = self.flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self.flights[key] = (threading.Event(), {})
        event, result = flight
        if not leader:
            if not event.wait(wait):
                raise FlightTimeout("the shared result did not arrive in time")
            return _unpack(result)
        try:
            value = compute()
            result["value"] = encrypt_str(value).decode()
            self._set(key, result["value"], share_seconds)
            return value
        except Exception as exc:
            result["error"] = on_error(exc)
            self.errors[key] = (time.monotonic() + ERROR_SHARE_SECONDS, result["error"])
            raise
        finally:
            with self.lock:
                self.flights.pop(key, None)
            event.set()


_local = _LocalFlights()
