import logging
import time
from collections.abc import Callable
from datetime import timedelta

import requests
from django.db import IntegrityError, transaction
from django.utils import timezone

from brokerproject import claims, http, jsonbody
from brokerproject.http import parse_retry_after
from zoomauth import presence
from zoomauth.models import ZoomApp, ZoomConnection
from zoomauth.services import (
    connection_disconnect,
    connection_for_zoom_user,
    connection_update_pmi,
    meeting_record_host,
)

from .models import DeliveryAttempt, ZoomWebhookDelivery

logger = logging.getLogger(__name__)

SESSION = http.session()
FORWARD_TIMEOUT = 10.0


class IntakeApps:
    """The intake's view of each Zoom app (its webhook secret and forward targets), kept by each
    process for INTAKE_APP_SECONDS. Reading the app, its Recall registration and its extra
    targets was a fifth of the intake's time at burst rate. Saving or deleting any of them in
    this process clears the cache at once; other processes catch up within the TTL."""

    TTL_SECONDS = 10.0

    def __init__(self):
        self.entries: dict[str, tuple[float, ZoomApp, list[str]]] = {}

    def get(self, public_id) -> tuple[ZoomApp, list[str]] | None:
        key = str(public_id)
        entry = self.entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1], entry[2]
        app = ZoomApp.objects.only("id", "public_id", "webhook_secret").filter(public_id=public_id).first()
        if app is None:
            self.entries.pop(key, None)
            return None
        targets = forward_targets(app)
        self.entries[key] = (time.monotonic() + self.TTL_SECONDS, app, targets)
        return app, targets

    def clear(self, **kwargs) -> None:
        self.entries.clear()


intake_apps = IntakeApps()

# Where an app's events go besides its extra targets: providers registered from the AppConfig.ready()
# of the apps that need Zoom's events (recallbots: the app's Recall webhook URL). webhooks knows
# none of them.
_target_providers: list[Callable[[ZoomApp], list[str]]] = []


def register_forward_targets(provider: Callable[[ZoomApp], list[str]]) -> None:
    """`provider(zoom_app)` returns URLs that get every event of that app, byte for byte. A
    provider whose answer changes (a registration saved or deleted) calls `intake_apps.clear`."""
    if provider not in _target_providers:
        _target_providers.append(provider)


def forward_targets(app: ZoomApp) -> list[str]:
    targets = [url for provider in _target_providers for url in provider(app)]
    targets.extend(app.extra_forward_targets.filter(enabled=True).values_list("url", flat=True))
    return targets


def delivery_intake(
    *,
    app: ZoomApp,
    body: bytes,
    timestamp: str,
    signature: str,
    content_type: str,
    event: str,
    targets: list[str],
) -> list[int]:
    """Persist the event once per target (Zoom's retries are recognised by the body's hash).

    Returns the ids of the rows created now; an empty list means a duplicate. With no target
    the event is still kept (as resolved) so that local handling runs.
    """
    digest = ZoomWebhookDelivery.digest(body)
    targets = targets or [""]
    rows = [
        ZoomWebhookDelivery(
            app=app,
            event=event[:100],
            body=body,
            body_sha256=digest,
            content_type=content_type[:100] or "application/json",
            zm_request_timestamp=timestamp[:20],
            zm_signature=signature[:100],
            target_url=target,
            status=ZoomWebhookDelivery.Status.PENDING if target else ZoomWebhookDelivery.Status.RESOLVED,
        )
        for target in targets
    ]
    try:
        # The usual case, a new event: one multi-row INSERT in one transaction.
        with transaction.atomic():
            return [delivery.pk for delivery in ZoomWebhookDelivery.objects.bulk_create(rows)]
    except IntegrityError:
        pass  # a retry of an event already stored (for some or all targets): row by row below
    created_ids = []
    for row in rows:
        try:
            with transaction.atomic():
                row.pk = None
                row.save(force_insert=True)
        except IntegrityError:
            continue
        created_ids.append(row.pk)
    return created_ids


# The forward's claim: a POST to Recall may take FORWARD_TIMEOUT per read; a POST that outlives
# the claim may be repeated by the next holder (Recall takes Zoom's retries the same way), but
# its answer is then not stored.
FORWARD_CLAIM = claims.Lease(field="next_attempt_at", holder_field="claim_holder")
FORWARD_CLAIM_SECONDS = FORWARD_TIMEOUT + 20


def _object(parent: dict, name: str) -> dict:
    """parent[name] when it is a JSON object, else an empty one."""
    value = parent.get(name)
    return value if isinstance(value, dict) else {}


def delivery_attempt(*, delivery_id: int) -> float | None:
    """POST the exact bytes once. Returns the delay before the next try, or None when finished
    (or when another worker holds the claim: that worker owns the retry chain).

    The delivery is claimed first (brokerproject.claims): no row lock is held while Recall
    answers, and the outcome is recorded only while the claim is still this attempt's."""
    holder = claims.new_holder()
    pending = ZoomWebhookDelivery.objects.filter(pk=delivery_id, status=ZoomWebhookDelivery.Status.PENDING)
    # The UPDATE waits for a row lock rather than skip: local handling may hold the row for a
    # moment, and a skipped attempt would sit until the sweeper's grace period passed.
    if not claims.claim(pending, FORWARD_CLAIM, holder=holder, seconds=FORWARD_CLAIM_SECONDS):
        return _delay_until_due(delivery_id)
    delivery = ZoomWebhookDelivery.objects.get(pk=delivery_id)
    status_code, error, retry_after, latency_ms = _post(delivery)
    next_delay = delivery.record_attempt(status_code=status_code, error=error, retry_after=retry_after)
    with transaction.atomic():
        stored = claims.release(
            pending,
            FORWARD_CLAIM,
            holder=holder,
            **{field: getattr(delivery, field) for field in delivery.ATTEMPT_FIELDS},
        )
        if stored:  # delivered and already handled locally: nothing needs the bytes
            ZoomWebhookDelivery.objects.filter(pk=delivery_id).clear_bodies()
        else:
            error = "claim lost (taken over or resolved): outcome not stored"
            next_delay = None
        DeliveryAttempt.objects.create(delivery=delivery, status_code=status_code, latency_ms=latency_ms, error=error)
    log = logger.info if stored else logger.warning
    log(
        "webhook forward attempt",
        extra={"delivery": delivery.pk, "status": status_code, "error": error, "latency_ms": latency_ms},
    )
    return next_delay


def _post(delivery: ZoomWebhookDelivery) -> tuple[int | None, str, float | None, int]:
    """POST the stored bytes with Zoom's signature headers: (status, error, Retry-After, latency ms)."""
    started = time.monotonic()
    status_code, error, retry_after = None, "", None
    try:
        response = SESSION.post(
            delivery.target_url,
            data=bytes(delivery.body),
            headers={
                "Content-Type": delivery.content_type,
                "x-zm-request-timestamp": delivery.zm_request_timestamp,
                "x-zm-signature": delivery.zm_signature,
            },
            timeout=FORWARD_TIMEOUT,
            allow_redirects=False,
        )
        status_code = response.status_code
        if status_code == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}"
    return status_code, error, retry_after, int((time.monotonic() - started) * 1000)


def _delay_until_due(delivery_id: int) -> float | None:
    """Not claimed: finished, claimed by another worker (None), or not due yet (the wait)."""
    row = (
        ZoomWebhookDelivery.objects.filter(pk=delivery_id, status=ZoomWebhookDelivery.Status.PENDING)
        .values("next_attempt_at", "claim_holder")
        .first()
    )
    if row is None or row["claim_holder"] is not None:
        return None
    # At least a second: the database's clock said not yet, whatever this host's says.
    return max(1.0, (row["next_attempt_at"] - timezone.now()).total_seconds())


def delivery_replay(*, delivery: ZoomWebhookDelivery) -> bool:
    """Send again; False when there is nothing to send (no target, or the body was cleared)."""
    return bool(
        ZoomWebhookDelivery.objects.filter(pk=delivery.pk, body_cleared_at__isnull=True)
        .exclude(target_url="")
        .update(status=ZoomWebhookDelivery.Status.PENDING, next_attempt_at=timezone.now())
    )


def deliveries_prune(*, now=None, batch_size: int = 2000) -> int:
    """Delete finished deliveries past ZOOM_WEBHOOK_RETENTION, in short transactions."""
    pruned = 0
    while pks := list(
        ZoomWebhookDelivery.objects.prunable(now=now).order_by().values_list("pk", flat=True)[:batch_size]
    ):
        ZoomWebhookDelivery.objects.filter(pk__in=pks).delete()
        pruned += len(pks)
    return pruned


# --- local handling ---------------------------------------------------------------------------


def _on_app_deauthorized(app: ZoomApp, payload: dict, obj: dict) -> ZoomConnection | None:
    # Zoom's data-compliance rule: the user removed the app, so purge what we hold for them.
    # The purge runs after the event row is committed (it calls Zoom and Recall).
    return connection_for_zoom_user(app=app, zoom_user_id=str(payload.get("user_id", "")))


def _on_user_updated(app: ZoomApp, payload: dict, obj: dict) -> ZoomConnection | None:
    connection = connection_for_zoom_user(app=app, zoom_user_id=str(obj.get("id", "")))
    if connection is not None and obj.get("pmi"):
        connection_update_pmi(connection=connection, pmi=str(obj["pmi"]))
    return connection


def _on_meeting_created(app: ZoomApp, payload: dict, obj: dict) -> ZoomConnection | None:
    connection = connection_for_zoom_user(app=app, zoom_user_id=str(obj.get("host_id", "")))
    if connection is not None and obj.get("id"):
        meeting_record_host(meeting_id=str(obj["id"]), host=connection, topic=str(obj.get("topic", "")))
    return connection


# The Zoom events the broker acts on itself, beside forwarding them: event name → handler.
# A handler gets the app and the event's payload and payload.object (dicts, possibly empty)
# and returns the connection the event concerns, if any.
EVENT_HANDLERS = {
    "app_deauthorized": _on_app_deauthorized,
    "user.updated": _on_user_updated,
    "meeting.created": _on_meeting_created,
}


# Acted on before the event is forwarded: a bot waiting for its user is launched the moment the
# join is recorded, not after Recall (up to FORWARD_TIMEOUT) has taken the event.
HANDLED_BEFORE_FORWARD = presence.PRESENCE_EVENTS


def event_handle_locally(*, delivery_id: int, before_forward: bool = False) -> None:
    """Act on the events the broker itself cares about. Runs once per event. With
    `before_forward`, only the events in HANDLED_BEFORE_FORWARD are handled (the rest wait for
    the call after forwarding)."""
    if (
        before_forward
        and not ZoomWebhookDelivery.objects.filter(pk=delivery_id, event__in=HANDLED_BEFORE_FORWARD).exists()
    ):
        return
    key = (
        ZoomWebhookDelivery.objects.filter(pk=delivery_id, processed_at__isnull=True)
        .values("app_id", "body_sha256")
        .first()
    )
    if not key:
        return
    with transaction.atomic():
        # The event's rows (one per target) locked in one order: whichever comes first handles
        # the event for all of them; the others then find themselves processed.
        rows = list(ZoomWebhookDelivery.objects.select_for_update().filter(**key).order_by("pk"))
        delivery = next((row for row in rows if row.pk == delivery_id and row.processed_at is None), None)
        if delivery is None:
            return
        now = timezone.now()
        if any(row.processed_at is not None for row in rows):  # a target added between Zoom's retries
            delivery.processed_at = now
            cleared = ["body", "body_cleared_at"] if delivery.clear_body_if_done(now=now) else []
            delivery.save(update_fields=["processed_at", *cleared])
            return
        kind, connection = _apply(delivery)
        for row in rows:
            # Handled: a row whose forward is done (delivered, or resolved) forgets the bytes now;
            # the others when delivery_attempt records their outcome.
            row.connection, row.processed_at = connection, now
            cleared = ["body", "body_cleared_at"] if row.clear_body_if_done(now=now) else []
            row.save(update_fields=["connection", "processed_at", *cleared])
    if kind == "app_deauthorized" and connection is not None and connection.status != ZoomConnection.Status.REVOKED:
        connection_disconnect(connection=connection, revoke_at_zoom=False, reason="The user removed the app in Zoom.")


def _apply(delivery: ZoomWebhookDelivery) -> tuple[str, ZoomConnection | None]:
    """What the broker itself does with the event: (its name, the connection it concerned).
    Zoom's shapes are not ours to trust: anything unexpected is simply not acted on."""
    try:
        event = jsonbody.loads(bytes(delivery.body), text="strip")
    except jsonbody.MalformedJSON:
        event = {}
    event = event if isinstance(event, dict) else {}
    payload = _object(event, "payload")
    obj = _object(payload, "object")
    kind = event.get("event", "")
    if not isinstance(kind, str):
        return "", None
    if kind in presence.PRESENCE_EVENTS:
        return kind, presence.presence_record(app=delivery.app, kind=kind, obj=obj, event_ts=event.get("event_ts"))
    handler = EVENT_HANDLERS.get(kind)
    return kind, handler(delivery.app, payload, obj) if handler else None


def deliveries_sweep(*, grace_seconds: int = 30) -> tuple[list[int], list[int]]:
    """Rows whose enqueue was lost (broker down, process stopped): due deliveries and
    unhandled events older than the grace period."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    due = list(ZoomWebhookDelivery.objects.due(now=cutoff).values_list("pk", flat=True)[:500])
    unhandled = list(
        ZoomWebhookDelivery.objects.filter(processed_at__isnull=True, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("pk", flat=True)[:500]
    )
    return due, unhandled


def delivery_gauges():
    """/metrics, read at each scrape: the Zoom-event forwarding backlog and its lag, and events to
    the customer's backend by delivery status."""
    from django.db.models import Count, Min
    from prometheus_client.core import GaugeMetricFamily

    from .models import EventDelivery

    pending = ZoomWebhookDelivery.objects.filter(status=ZoomWebhookDelivery.Status.PENDING).aggregate(
        n=Count("pk"), oldest=Min("received_at")
    )
    yield GaugeMetricFamily(
        "broker_webhook_forward_backlog", "Zoom events waiting to be forwarded to Recall.", value=pending["n"]
    )
    lag = (timezone.now() - pending["oldest"]).total_seconds() if pending["oldest"] else 0.0
    yield GaugeMetricFamily(
        "broker_webhook_forward_lag_seconds", "Age of the oldest Zoom event not yet forwarded.", value=lag
    )
    deliveries = GaugeMetricFamily(
        "broker_event_deliveries", "Events to the customer's backend by delivery status.", labels=["status"]
    )
    counts = dict(EventDelivery.objects.values_list("status").annotate(n=Count("pk")))
    for status in EventDelivery.Status.values:
        deliveries.add_metric([status], counts.get(status, 0))
    yield deliveries
