"""Liveness, readiness and metrics at the top of the site: the project's own, filled by the apps.

This module knows no app. Each app registers, from its AppConfig.ready(), the readiness checks
it owns (`register_check`) and the gauges it reads from its tables at scrape time
(`register_gauges`), the way Django's system checks are registered. The project's own checks
(database, Celery broker, Redis) are registered here.

- GET /healthz: 200 while the process serves.
- GET /readyz: 200 when every check passes, else 503 with each check's detail; the database
  comes first, and when it fails nothing else is asked.
- GET /metrics: Prometheus text behind `Authorization: Bearer <METRICS_TOKEN>`; counters summed
  over the gunicorn workers (brokerproject.metrics), gauges read from the database.
"""

import hmac
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from . import metrics
from .celery import app as celery_app
from .redis_client import quick_redis

Check = Callable[[], tuple[bool, str]]

_checks: dict[str, Check] = {}
_gauges: list[Callable[[], Iterable]] = []


def register_check(name: str, check: Check) -> None:
    """A readiness check: returns (ok, detail); an exception counts as not ok."""
    _checks[name] = check


def register_gauges(collect: Callable[[], Iterable]) -> None:
    """A function yielding prometheus_client metric families, called at every scrape."""
    if collect not in _gauges:
        _gauges.append(collect)


def _check_database() -> tuple[bool, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return True, connection.vendor


def _check_broker() -> tuple[bool, str]:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return True, conn.transport.driver_name


def _check_redis() -> tuple[bool, str]:
    """Throttle counters, the ZAK single-flight and idempotency keys live here. Without it the
    broker degrades (per-process counters and flights, 503 for Idempotency-Key) rather than fails."""
    client = quick_redis()
    if client is None:
        return True, "not configured (embedded default: process-local state)"
    client.ping()
    return True, "ok"


register_check("database", _check_database)
register_check("broker", _check_broker)
register_check("redis", _check_redis)


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def readiness() -> dict[str, dict]:
    """Each registered check's {ok, detail}; when the database fails nothing else is asked."""
    results = {}
    for name, check in _checks.items():
        try:
            ok, detail = check()
        except Exception as exc:  # noqa: BLE001 - a failed check is reported, not raised
            ok, detail = False, type(exc).__name__
        results[name] = {"ok": ok, "detail": detail}
        if name == "database" and not ok:
            break
    return results


@never_cache
@require_GET
def readyz(request):
    results = readiness()
    ready = len(results) == len(_checks) and all(r["ok"] for r in results.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": results}, status=200 if ready else 503)


class _RegisteredGauges:
    def collect(self):
        for collect in _gauges:
            yield from collect()


@never_cache
@require_GET
def metrics_view(request):
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off: set METRICS_TOKEN.")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        response = HttpResponse("A valid 'Authorization: Bearer <METRICS_TOKEN>' is required.", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.exposition([_RegisteredGauges()]), content_type=CONTENT_TYPE_LATEST)
