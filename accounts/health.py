"""Liveness and readiness, as JSON."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from brokerproject.celery import app as celery_app
from brokerproject.redis_client import quick_redis

from .models import EncryptionCanary, Heartbeat


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


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


def _check_beat() -> tuple[bool, str]:
    beat = Heartbeat.objects.filter(name="beat").first()
    if beat is None:
        return False, "no heartbeat yet: is celery beat (and a worker) running?"
    age = timezone.now() - beat.beat_at
    ok = age <= settings.BEAT_HEARTBEAT_MAX_AGE
    return ok, f"last heartbeat {int(age.total_seconds())}s ago"


CHECKS = {
    "database": _check_database,
    "broker": _check_broker,
    "redis": _check_redis,
    "encryption": EncryptionCanary.verify_key,
    "beat": _check_beat,
}


@never_cache
@require_GET
def readyz(request):
    results = {}
    for name, check in CHECKS.items():
        try:
            ok, detail = check()
        except Exception as exc:  # noqa: BLE001 - a failed check is reported, not raised
            ok, detail = False, type(exc).__name__
        results[name] = {"ok": ok, "detail": detail}
        if name == "database" and not ok:
            break
    ready = all(r["ok"] for r in results.values()) and len(results) == len(CHECKS)
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": results}, status=200 if ready else 503)
