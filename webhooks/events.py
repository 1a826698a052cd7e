"""Events to the customer's backend: what happened to its connections and bots, signed the
Standard Webhooks way and delivered durably.

- `event_emit` stores the event and one delivery per enabled endpoint in the caller's
  transaction, and enqueues the sends after commit: nothing is sent for a change that rolled back,
  and nothing is lost when the receiver, the broker or the queue is down (the beat sweeper
  re-enqueues what is due).
- Delivery is in order per connection and endpoint: a delivery waits while an earlier one for the
  same connection is still pending, and each success enqueues the next.
- Retries back off from 10 s to 1 h for EVENT_RETRY_PERIOD (24 h) after the event, then fail;
  staff see every attempt and can replay from the admin.
- Headers: webhook-id (the event's id, the same on every retry, for the receiver's dedup),
  webhook-timestamp and webhook-signature (v1, HMAC-SHA256 of "id.timestamp.body" with the
  endpoint's whsec_ secret): any Standard Webhooks library verifies them.
"""

import json
import logging
import time
from datetime import timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.db.models.functions import Now
from django.utils import timezone

from brokerproject import claims, http, signing
from brokerproject.celery import enqueue_safely

from .models import Event, EventDelivery, EventEndpoint

logger = logging.getLogger(__name__)

SESSION = http.session(pool_maxsize=16)
SEND_TIMEOUT = 10.0


def event_emit(*, type: str, data: dict, connection_id: int | None = None) -> Event | None:
    """Record an event for every enabled endpoint; sends start once the caller's transaction commits."""
    endpoints = list(EventEndpoint.objects.filter(enabled=True).values_list("pk", flat=True))
    if not endpoints:
        return None
    with transaction.atomic():
        event = Event.objects.create(type=type, data=data, connection_id=connection_id)
        deliveries = EventDelivery.objects.bulk_create(
            EventDelivery(event=event, endpoint_id=endpoint_id) for endpoint_id in endpoints
        )
    ids = [delivery.pk for delivery in deliveries]
    transaction.on_commit(lambda: _enqueue(ids))
    return event


def _enqueue(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        if not enqueue_safely("webhooks.tasks.event_delivery_attempt", delivery_id):
            return  # the broker is away: the sweeper sends them later


def event_body(event: Event) -> bytes:
    return json.dumps(
        {"type": event.type, "timestamp": event.created_at, "data": event.data},
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    ).encode()


# A claimed delivery is not sent by anyone else for this long (the send's timeout and margin).
SEND_LEASE = timedelta(seconds=SEND_TIMEOUT + 20)
SEND_CLAIM = claims.Lease(field="next_attempt_at", holder_field="claim_holder")


def event_delivery_attempt(*, delivery_id: int) -> tuple[float | None, int | None]:
    """One send. Returns (delay before the next try or None, the next delivery to send or None).

    One retry chain per delivery: the send is claimed first (brokerproject.claims, a lease on
    `next_attempt_at` by the database's clock), so a message that arrives early, twice, or beside
    the sweeper's finds nothing to do. No row lock is held while the receiver answers, and the
    answer is recorded only while the claim is still this send's."""
    holder = claims.new_holder()
    pending = EventDelivery.objects.filter(pk=delivery_id, status=EventDelivery.Status.PENDING)
    if not claims.claim(pending, SEND_CLAIM, holder=holder, seconds=SEND_LEASE.total_seconds()):
        return None, None
    delivery = EventDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    if delivery.earlier_pending().exists():
        # In order per connection: the earlier one enqueues this one when it is done.
        claims.release(pending, SEND_CLAIM, holder=holder, next_attempt_at=Now())
        return None, None
    status_code, error = _send(delivery)
    delay = delivery.record_attempt(status_code=status_code, error=error)
    outcome = {field: getattr(delivery, field) for field in delivery.ATTEMPT_FIELDS}
    if not claims.release(pending, SEND_CLAIM, holder=holder, **outcome):
        # The send outlived its claim and another took it over: that one's answer stands.
        logger.warning(
            "event delivery outlived its claim: answer not stored", extra={"event_type": delivery.event.type}
        )
        return None, None
    following = None
    if delivery.status != EventDelivery.Status.PENDING:
        following = delivery.next_in_line()
    logger.info(
        "event delivery",
        extra={"event_type": delivery.event.type, "status": delivery.status, "attempts": delivery.attempts},
    )
    return delay, following


def _send(delivery: EventDelivery) -> tuple[int | None, str]:
    """POST the signed event: (the answer's status or None, why there was none)."""
    event, endpoint = delivery.event, delivery.endpoint
    body = event_body(event)
    sent_at = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": event.message_id,
        "webhook-timestamp": str(sent_at),
        "webhook-signature": signing.sign(
            secret=endpoint.secret, msg_id=event.message_id, timestamp=sent_at, body=body
        ),
    }
    try:
        response = SESSION.post(endpoint.url, data=body, headers=headers, timeout=SEND_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any transport failure is a retry
        return None, type(exc).__name__
    return response.status_code, ""


def event_deliveries_due(*, grace_seconds: int = 30) -> list[int]:
    """Pending deliveries whose time has come and that are first in line for their connection.

    Followers waiting behind an earlier pending delivery are left out in the query itself, so a
    long line for one connection never fills the batch and starves the heads of the others."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=grace_seconds)
    earlier = EventDelivery.objects.filter(
        status=EventDelivery.Status.PENDING,
        endpoint_id=OuterRef("endpoint_id"),
        event__connection_id=OuterRef("event__connection_id"),
        event__created_at__lt=OuterRef("event__created_at"),
    )
    due = (
        EventDelivery.objects.filter(
            status=EventDelivery.Status.PENDING, next_attempt_at__lte=now, created_at__lt=cutoff
        )
        .exclude(Exists(earlier))
        .order_by("event__created_at", "pk")
    )
    return list(due.values_list("pk", flat=True)[:500])


def event_delivery_replay(*, delivery: EventDelivery) -> None:
    EventDelivery.objects.filter(pk=delivery.pk).update(
        status=EventDelivery.Status.PENDING, next_attempt_at=timezone.now()
    )
    transaction.on_commit(lambda: _enqueue([delivery.pk]))
