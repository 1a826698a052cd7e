"""Zoom webhook intake and forwarding to the fake Recall, byte for byte."""

import hashlib
import hmac
import json
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from brokerproject.celery import app as celery_app
from fakes.zoom import sign_webhook
from recallbots.services import recall_app_register
from tests.conftest import WEBHOOK_SECRET
from webhooks.models import WebhookRejection, ZoomWebhookDelivery
from webhooks.services import delivery_attempt, event_handle_locally
from webhooks.tasks import deliveries_sweep
from zoomauth.models import ZoomConnection, ZoomMeeting

pytestmark = pytest.mark.django_db(transaction=True)

ODD_BODY = (
    '{ "payload" : {"account_id":"acct_zu_alice",  "object": {"id": 85012345678, "host_id":"zu_alice",'
    ' "topic":"Réunion – 東京 🎉\\u00e9"}},\n\t"event":"meeting.created", "event_ts": 1732440000123 }'
).encode()


@contextmanager
def broker_away():
    """Point Celery at a port where nothing listens, as if Redis were down, then restore it."""

    def fresh_pools():
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    original = celery_app.conf.broker_url
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    fresh_pools()
    try:
        yield
    finally:
        celery_app.conf.broker_url = original
        fresh_pools()


@pytest.fixture
def recall_app(zoom_app, fake_recall):
    return recall_app_register(zoom_app=zoom_app)


def post_event(client, zoom_app, body: bytes, *, timestamp: str | None = None, signature: str | None = None):
    timestamp = timestamp or str(int(time.time() * 1000))
    signature = signature if signature is not None else sign_webhook(WEBHOOK_SECRET, timestamp, body)
    return client.post(
        f"/webhooks/zoom/{zoom_app.public_id}/",
        body,
        content_type="application/json; charset=utf-8",
        HTTP_X_ZM_REQUEST_TIMESTAMP=timestamp,
        HTTP_X_ZM_SIGNATURE=signature,
    )


def test_forwarded_bytes_equal_received_bytes(client, recall_app, fake_recall):
    assert post_event(client, recall_app.zoom_app, ODD_BODY).status_code == 200
    delivery = ZoomWebhookDelivery.objects.get()
    assert delivery_attempt(delivery_id=delivery.pk) is None
    receipt = fake_recall.webhook_receipts[-1]
    assert receipt["sha256"] == hashlib.sha256(ODD_BODY).hexdigest() == delivery.body_sha256
    assert receipt["signature_valid"] is True  # Recall re-verified Zoom's signature over the same bytes
    assert receipt["content_type"] == "application/json; charset=utf-8"
    delivery.refresh_from_db()
    assert delivery.status == ZoomWebhookDelivery.Status.DELIVERED and delivery.attempts == 1


# The stale case is an age, not a timestamp: a test id made from the clock differs between two
# workers' collections that straddle a second (xdist then refuses the run).
@pytest.mark.parametrize(
    ("age_seconds", "signature", "reason"),
    [
        (None, "v0=deadbeef", "does not match"),
        (None, "", "missing"),
        (600, None, "5 minutes"),
    ],
)
def test_bad_missing_or_stale_signature_is_401_and_recorded(client, zoom_app, age_seconds, signature, reason):
    timestamp = None if age_seconds is None else str(int(time.time()) - age_seconds)
    response = post_event(client, zoom_app, b'{"event":"meeting.created"}', timestamp=timestamp, signature=signature)
    assert response.status_code == 401
    rejection = WebhookRejection.objects.get()
    assert reason in rejection.reason and rejection.app == zoom_app
    assert not ZoomWebhookDelivery.objects.exists()


def test_seconds_timestamps_are_accepted(client, zoom_app):
    assert post_event(client, zoom_app, b'{"event":"x"}', timestamp=str(int(time.time()))).status_code == 200


def test_url_validation_is_answered_only_when_signed(client, recall_app, fake_recall):
    body = json.dumps(
        {"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}}
    ).encode()
    response = post_event(client, recall_app.zoom_app, body)
    expected = hmac.new(WEBHOOK_SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert response.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}
    assert post_event(client, recall_app.zoom_app, body, signature="v0=forged").status_code == 401
    delivery_attempt(delivery_id=ZoomWebhookDelivery.objects.get().pk)  # Recall sees it too
    assert fake_recall.apps[recall_app.recall_id]["webhook_last_validation"] is not None


def test_zoom_retries_of_one_event_are_not_forwarded_twice(client, recall_app):
    for _ in range(3):
        assert post_event(client, recall_app.zoom_app, ODD_BODY).status_code == 200
    assert ZoomWebhookDelivery.objects.count() == 1


def test_recall_503_for_a_while_then_delivered(client, recall_app, fake_recall):
    fake_recall.configure(webhook_fail_next=[503, 503, 429])
    post_event(client, recall_app.zoom_app, ODD_BODY)
    delivery = ZoomWebhookDelivery.objects.get()
    delays = []
    for _ in range(4):
        delays.append(delivery_attempt(delivery_id=delivery.pk))
        ZoomWebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    delivery.refresh_from_db()
    assert delivery.status == ZoomWebhookDelivery.Status.DELIVERED
    assert [d is not None for d in delays] == [True, True, True, False]
    assert 0 < delays[0] <= 10 and delays[1] <= 20  # exponential backoff with jitter
    assert list(delivery.attempt_log.order_by("attempted_at").values_list("status_code", flat=True)) == [
        503,
        503,
        429,
        200,
    ]
    assert [r["answered"] for r in fake_recall.webhook_receipts] == [503, 503, 429, 200]


def test_other_4xx_fail_and_the_period_ends_retries(client, recall_app, fake_recall, settings):
    fake_recall.configure(webhook_fail_next=[410])
    post_event(client, recall_app.zoom_app, ODD_BODY)
    delivery = ZoomWebhookDelivery.objects.get()
    delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == ZoomWebhookDelivery.Status.FAILED and "410" in delivery.last_error

    fake_recall.configure(webhook_fail_next=[503])
    post_event(client, recall_app.zoom_app, ODD_BODY.replace(b"123", b"124"))
    late = ZoomWebhookDelivery.objects.exclude(pk=delivery.pk).get()
    ZoomWebhookDelivery.objects.filter(pk=late.pk).update(received_at=timezone.now() - timedelta(hours=25))
    delivery_attempt(delivery_id=late.pk)
    late.refresh_from_db()
    assert late.status == ZoomWebhookDelivery.Status.FAILED and "gave up" in late.last_error


def test_redis_down_at_intake_is_accepted_and_forwarded_later(client, recall_app, fake_recall, caplog):
    with broker_away():
        started = time.monotonic()
        response = post_event(client, recall_app.zoom_app, ODD_BODY)
        elapsed = time.monotonic() - started
    assert response.status_code == 200 and elapsed < 3
    assert "could not enqueue webhooks.tasks.deliveries_received" in caplog.text  # the broker really was away
    delivery = ZoomWebhookDelivery.objects.get()
    assert delivery.status == ZoomWebhookDelivery.Status.PENDING
    ZoomWebhookDelivery.objects.update(
        received_at=timezone.now() - timedelta(minutes=5), next_attempt_at=timezone.now() - timedelta(minutes=5)
    )
    assert deliveries_sweep.run() == 2  # the forward and the local handling are re-enqueued
    delivery_attempt(delivery_id=delivery.pk)  # what the worker then runs
    assert ZoomWebhookDelivery.objects.get().status == ZoomWebhookDelivery.Status.DELIVERED


def test_meeting_created_and_user_updated_are_handled_locally(client, recall_app, connection):
    post_event(client, recall_app.zoom_app, ODD_BODY)
    event_handle_locally(delivery_id=ZoomWebhookDelivery.objects.get().pk)
    mapping = ZoomMeeting.objects.get()
    assert (mapping.meeting_id, mapping.host_connection_id) == ("85012345678", connection.pk)
    assert mapping.topic.startswith("Réunion")
    body = json.dumps(
        {"event": "user.updated", "event_ts": 1, "payload": {"object": {"id": "zu_alice", "pmi": 7778889999}}}
    )
    post_event(client, recall_app.zoom_app, body.encode())
    event_handle_locally(delivery_id=ZoomWebhookDelivery.objects.get(event="user.updated").pk)
    assert ZoomConnection.objects.get(pk=connection.pk).pmi == "7778889999"


def test_app_deauthorized_purges_the_users_tokens(client, zoom_app, connection):
    body = json.dumps(
        {
            "event": "app_deauthorized",
            "event_ts": 2,
            "payload": {
                "account_id": "acct_zu_alice",
                "user_id": "zu_alice",
                "signature": "x",
                "deauthorization_time": "2026-11-24T10:00:00Z",
            },
        }
    )
    assert post_event(client, zoom_app, body.encode()).status_code == 200
    delivery = ZoomWebhookDelivery.objects.get()
    assert delivery.status == ZoomWebhookDelivery.Status.RESOLVED  # no Recall app: kept, nothing to forward
    event_handle_locally(delivery_id=delivery.pk)
    connection.refresh_from_db()
    assert connection.status == ZoomConnection.Status.REVOKED
    assert (connection.access_token, connection.refresh_token) == ("", "")


def test_admin_lists_deliveries_without_bodies_or_signatures(client, staff, recall_app):
    post_event(client, recall_app.zoom_app, ODD_BODY)
    delivery = ZoomWebhookDelivery.objects.get()
    client.force_login(staff)
    listing = client.get("/admin/webhooks/zoomwebhookdelivery/").content.decode()
    assert "meeting.created" in listing and delivery.zm_signature not in listing
    detail = client.get(f"/admin/webhooks/zoomwebhookdelivery/{delivery.pk}/change/").content.decode()
    assert delivery.zm_signature not in detail and "Réunion" not in detail
    response = client.post(
        "/admin/webhooks/zoomwebhookdelivery/", {"action": "mark_resolved", "_selected_action": [delivery.pk]}
    )
    assert response.status_code == 302
    assert ZoomWebhookDelivery.objects.get().status == ZoomWebhookDelivery.Status.RESOLVED


def test_extra_forward_targets_get_the_same_bytes(client, recall_app, fake_recall):
    from webhooks.models import ExtraForwardTarget

    ExtraForwardTarget.objects.create(
        app=recall_app.zoom_app,
        url=f"{fake_recall.base_url}/us-east-1/api/v2/zoom-oauth-apps/{recall_app.recall_id}/webhook?copy=1",
    )
    post_event(client, recall_app.zoom_app, ODD_BODY)
    deliveries = list(ZoomWebhookDelivery.objects.order_by("pk"))
    assert len(deliveries) == 2 and deliveries[1].target_url.endswith("?copy=1")
    for delivery in deliveries:
        delivery_attempt(delivery_id=delivery.pk)
    assert [r["sha256"] for r in fake_recall.webhook_receipts] == [hashlib.sha256(ODD_BODY).hexdigest()] * 2


def test_admin_replay_sends_a_failed_delivery_again(client, staff, recall_app, fake_recall):
    fake_recall.configure(webhook_fail_next=[400])
    post_event(client, recall_app.zoom_app, ODD_BODY)
    delivery = ZoomWebhookDelivery.objects.get()
    delivery_attempt(delivery_id=delivery.pk)
    assert ZoomWebhookDelivery.objects.get().status == ZoomWebhookDelivery.Status.FAILED
    client.force_login(staff)
    response = client.post(
        "/admin/webhooks/zoomwebhookdelivery/", {"action": "replay_now", "_selected_action": [delivery.pk]}
    )
    assert response.status_code == 302
    assert ZoomWebhookDelivery.objects.get().status == ZoomWebhookDelivery.Status.PENDING
    delivery_attempt(delivery_id=delivery.pk)  # what the worker runs for the enqueued task
    replayed = ZoomWebhookDelivery.objects.get()
    assert replayed.status == ZoomWebhookDelivery.Status.DELIVERED and replayed.attempts == 2


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b"not json", b'{"event": "endpoint.url_validation", "payload": "x"}'],
)
def test_signed_but_malformed_bodies_get_400_not_500(client, zoom_app, body):
    response = post_event(client, zoom_app, body)
    assert response.status_code == 400
    assert not ZoomWebhookDelivery.objects.exists()


def test_odd_payload_shapes_are_stored_and_handled_without_errors(client, zoom_app):
    body = b'{"event": "meeting.created", "payload": {"object": [1]}}'
    assert post_event(client, zoom_app, body).status_code == 200
    delivery = ZoomWebhookDelivery.objects.get()
    event_handle_locally(delivery_id=delivery.pk)
    assert ZoomWebhookDelivery.objects.get().processed_at is not None


def test_events_taken_in_together_share_one_queue_message(client, recall_app, settings):
    from brokerproject.redis_client import shared_redis
    from webhooks.views import intake_queue

    settings.WEBHOOK_ENQUEUE_BATCH_SECONDS = 60  # nothing leaves before the flush below
    for n in range(5):
        body = json.dumps({"event": "meeting.created", "event_ts": n, "payload": {}}).encode()
        assert post_event(client, recall_app.zoom_app, body).status_code == 200
    assert ZoomWebhookDelivery.objects.count() == 5  # stored before each 200
    assert shared_redis().llen("zoom-events") == 0
    intake_queue.flush()
    assert shared_redis().llen("zoom-events") == 1  # on the queue of its own
    message = json.loads(shared_redis().lindex("zoom-events", 0))
    assert message["headers"]["task"] == "webhooks.tasks.deliveries_received"
    sent = json.loads(__import__("base64").b64decode(message["body"]))[0][0]
    assert sorted(ids[0] for ids in sent) == sorted(ZoomWebhookDelivery.objects.values_list("pk", flat=True))
