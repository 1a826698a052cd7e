"""Nothing of a Zoom event's participants stays in the database once the event is forwarded and
handled: the fake Zoom sends signed events over real HTTP to the broker's intake (a live server),
a worker's turn runs the queued tasks, the fake Recall takes the forwards; then every table is
read."""

import base64
import hashlib
import importlib
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection as db
from django.utils import timezone

from brokerproject.redis_client import shared_redis
from fakes.zoom import send_webhook
from recallbots.services import recall_app_register
from tests.conftest import WEBHOOK_SECRET, run_queued_tasks
from tests.staff import post_action, staff_with
from webhooks.models import DeliveryAttempt, ExtraForwardTarget, ZoomWebhookDelivery
from zoomauth.models import MeetingActivity, MeetingPresence

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
MEETING = "85077665544"
GUEST = {"guest_name": "Mallory Guestname", "guest_email": "mallory.guest@example.org"}
ZOOM_DELIVERIES = "/admin/webhooks/zoomwebhookdelivery/"


@pytest.fixture(autouse=True)
def _live(live_broker, settings):
    settings.WEBHOOK_ENQUEUE_BATCH_SECONDS = 0  # each event on the queue before Zoom's 200
    shared_redis().delete("zoom-events")
    return live_broker


@pytest.fixture
def recall_app(zoom_app, fake_recall):
    return recall_app_register(zoom_app=zoom_app)


@pytest.fixture
def intake(zoom_app, live_broker):
    return live_broker.url + f"/webhooks/zoom/{zoom_app.public_id}/"


@pytest.fixture
def meeting(fake_zoom, intake, recall_app):
    fake_zoom.add_meeting(id=MEETING, host_id="zu_alice")
    fake_zoom.send_events_to(url=intake, secret=WEBHOOK_SECRET)
    return MEETING


def raw(event: dict) -> bytes:
    """The bytes the fake Zoom sent for an event it returned."""
    return json.dumps(event, separators=(",", ":")).encode()


def guest_traces(event: dict) -> list[str]:
    participant = event["payload"]["object"]["participant"]
    return [participant["user_name"], participant["email"], participant["user_id"], participant["participant_uuid"]]


def tables_containing(*needles: str) -> list[tuple[str, str]]:
    """(table, needle) for each needle found in any row of any table, as text or in a bytea."""
    found = []
    with db.cursor() as cursor:
        for table in db.introspection.table_names():
            cursor.execute(f'SELECT t::text FROM "{table}" t')  # noqa: S608 - names from the catalog
            text = "\n".join(row[0] for row in cursor.fetchall()).lower()
            found += [(table, n) for n in needles if n.lower() in text or n.encode().hex() in text]
    return found


def worker_turn() -> int:
    ran = 0
    while n := run_queued_tasks("zoom-events"):
        ran += n
    return ran


def take_one(queue: str = "zoom-events") -> str:
    """A worker takes the oldest message off the queue and runs its task once."""
    message = json.loads(shared_redis().rpop(queue))
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    name = message["headers"]["task"]
    importlib.import_module(name.rsplit(".", 1)[0])
    from brokerproject.celery import app

    app.tasks[name].apply(args=args, kwargs=kwargs)
    return name


def test_no_trace_of_a_guest_remains_in_any_table_once_forwarded_and_handled(
    connection, meeting, fake_zoom, fake_recall, intake
):
    sent = [
        fake_zoom.meeting_action(MEETING, "join", user_id="zu_alice"),
        fake_zoom.meeting_action(MEETING, "join", **GUEST),
        fake_zoom.meeting_action(MEETING, "leave", **GUEST),
    ]
    # An event the broker does not act on carries personal data too: all events are cleared.
    chat = {
        "event": "meeting.chat_message_sent",
        "event_ts": 1732440000999,
        "payload": {"object": {"id": MEETING, "chat_message": {"sender_name": "Mallory Guestname"}}},
    }
    assert send_webhook(url=intake, secret=WEBHOOK_SECRET, body=raw(chat))[0] == 200
    sent.append(chat)
    traces = guest_traces(sent[1]) + guest_traces(sent[2])
    assert ("webhooks_zoomwebhookdelivery", "Mallory Guestname") in tables_containing(*traces)  # the scan sees bytea

    assert worker_turn() >= 4
    assert sorted(r["sha256"] for r in fake_recall.webhook_receipts) == sorted(
        hashlib.sha256(raw(event)).hexdigest() for event in sent
    )  # forwarded byte for byte, before the bytes were forgotten
    assert all(r["signature_valid"] for r in fake_recall.webhook_receipts)
    assert MeetingPresence.objects.get().connection_id == connection.pk  # the connected user's presence is kept
    assert MeetingActivity.objects.get(meeting_id=MEETING).others_count == 0  # the guest came and went: a count
    for delivery in ZoomWebhookDelivery.objects.all():
        assert delivery.status == ZoomWebhookDelivery.Status.DELIVERED and delivery.processed_at
        assert bytes(delivery.body) == b"" and delivery.body_cleared_at is not None
        assert delivery.event and delivery.body_sha256 and delivery.received_at  # what staff still see
    assert tables_containing(*traces) == []


def test_a_zoom_retry_of_a_cleared_event_is_still_a_duplicate(meeting, fake_zoom, fake_recall, intake):
    event = fake_zoom.meeting_action(MEETING, "join", **GUEST)
    worker_turn()
    delivery = ZoomWebhookDelivery.objects.get()
    assert delivery.body_cleared_at is not None and bytes(delivery.body) == b""
    # Zoom retries the same bytes (a new timestamp and signature): dropped, not forwarded again.
    assert send_webhook(url=intake, secret=WEBHOOK_SECRET, body=raw(event))[0] == 200
    assert worker_turn() == 0
    assert ZoomWebhookDelivery.objects.count() == 1 and len(fake_recall.webhook_receipts) == 1
    assert MeetingActivity.objects.get().others_count == 1  # counted once
    assert tables_containing(*guest_traces(event)) == []


def test_a_delivery_still_being_retried_keeps_its_body_and_is_forwarded_byte_for_byte(meeting, fake_zoom, fake_recall):
    fake_recall.configure(webhook_fail_next=[503])  # Recall away
    event = fake_zoom.meeting_action(MEETING, "join", **GUEST)
    assert take_one() == "webhooks.tasks.deliveries_received"
    delivery = ZoomWebhookDelivery.objects.get()
    assert delivery.status == ZoomWebhookDelivery.Status.PENDING and delivery.attempts == 1
    assert delivery.processed_at is not None  # presence handled before the forward
    assert bytes(delivery.body) == raw(event) and delivery.body_cleared_at is None
    assert tables_containing(GUEST["guest_email"]) == [("webhooks_zoomwebhookdelivery", GUEST["guest_email"])]

    # Recall is back and the retry's time has come (as if its backoff had passed).
    ZoomWebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert worker_turn() >= 1
    receipts = fake_recall.webhook_receipts
    assert [r["answered"] for r in receipts] == [503, 200]
    assert receipts[-1]["sha256"] == hashlib.sha256(raw(event)).hexdigest() and receipts[-1]["signature_valid"]
    delivery.refresh_from_db()
    assert delivery.status == ZoomWebhookDelivery.Status.DELIVERED and delivery.body_cleared_at is not None
    assert tables_containing(*guest_traces(event)) == []


def test_a_forward_whose_answer_is_lost_keeps_the_body_until_a_retry_is_answered(meeting, fake_zoom, fake_recall):
    fake_recall.configure(webhook_drop_next=1)  # Recall takes the event, its answer never comes
    event = fake_zoom.meeting_action(MEETING, "join", **GUEST)
    take_one()
    delivery = ZoomWebhookDelivery.objects.get()
    assert delivery.status == ZoomWebhookDelivery.Status.PENDING and delivery.last_error
    assert bytes(delivery.body) == raw(event) and delivery.body_cleared_at is None
    ZoomWebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    worker_turn()
    assert [r["answered"] for r in fake_recall.webhook_receipts] == ["dropped", 200]
    assert len({r["sha256"] for r in fake_recall.webhook_receipts}) == 1  # the same bytes again
    delivery.refresh_from_db()
    assert delivery.status == ZoomWebhookDelivery.Status.DELIVERED and bytes(delivery.body) == b""
    assert tables_containing(*guest_traces(event)) == []


def test_every_targets_copy_is_cleared_once_its_own_forward_is_done(meeting, fake_zoom, fake_recall, recall_app):
    ExtraForwardTarget.objects.create(
        app=recall_app.zoom_app,
        url=f"{fake_recall.base_url}/us-east-1/api/v2/zoom-oauth-apps/{recall_app.recall_id}/webhook?copy=1",
    )
    event = fake_zoom.meeting_action(MEETING, "join", **GUEST)
    worker_turn()
    assert len(fake_recall.webhook_receipts) == 2
    deliveries = ZoomWebhookDelivery.objects.order_by("pk")
    assert [d.target_url.endswith("?copy=1") for d in deliveries] == [False, True]
    assert all(d.processed_at and d.body_cleared_at and bytes(d.body) == b"" for d in deliveries)
    assert tables_containing(*guest_traces(event)) == []


def test_finished_deliveries_are_pruned_after_the_retention_and_pending_ones_kept(
    meeting, fake_zoom, fake_recall, settings
):
    from webhooks import tasks

    beat = django_settings.CELERY_BEAT_SCHEDULE["prune-webhook-deliveries"]
    assert beat["task"] == tasks.deliveries_prune.name
    kinds = {}
    for kind, answer in (("delivered", None), ("young", None), ("failed", 400), ("pending", 503)):
        fake_recall.configure(webhook_fail_next=[answer] if answer else [])
        fake_zoom.meeting_action(MEETING, "join", guest_name=f"Guest {kind}")
        take_one()
        kinds[kind] = ZoomWebhookDelivery.objects.latest("pk").pk
    shared_redis().delete("zoom-events")  # the pending one's retry: the sweep would find it again
    statuses = dict(ZoomWebhookDelivery.objects.values_list("pk", "status"))
    assert [statuses[kinds[k]] for k in ("delivered", "young", "failed", "pending")] == [
        "delivered",
        "delivered",
        "failed",
        "pending",
    ]
    old = timezone.now() - settings.ZOOM_WEBHOOK_RETENTION - timedelta(minutes=1)
    ZoomWebhookDelivery.objects.exclude(pk=kinds["young"]).update(received_at=old)

    assert tasks.deliveries_prune.apply().get() == 2
    assert set(ZoomWebhookDelivery.objects.values_list("pk", flat=True)) == {kinds["young"], kinds["pending"]}
    assert set(DeliveryAttempt.objects.values_list("delivery_id", flat=True)) == {kinds["young"], kinds["pending"]}
    assert tasks.deliveries_prune.apply().get() == 0


def test_a_retention_under_a_day_is_refused_at_start():
    env = {**os.environ, "DEBUG": "true", "ZOOM_WEBHOOK_RETENTION_DAYS": "0"}
    done = subprocess.run(
        [sys.executable, "-c", "import brokerproject.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "ZOOM_WEBHOOK_RETENTION_DAYS" in done.stderr


def test_the_admin_never_shows_a_body_and_a_cleared_one_is_not_replayed(client, meeting, fake_zoom, fake_recall):
    fake_recall.configure(webhook_fail_next=[503])
    fake_zoom.meeting_action(MEETING, "join", **GUEST)
    take_one()
    shared_redis().delete("zoom-events")
    pending = ZoomWebhookDelivery.objects.get()
    assert GUEST["guest_email"].encode() in bytes(pending.body)  # kept while Recall is away

    client.force_login(staff_with("webhooks.view_zoomwebhookdelivery", "webhooks.change_zoomwebhookdelivery"))
    pages = [
        client.get(ZOOM_DELIVERIES),
        client.get(ZOOM_DELIVERIES, {"q": "mallory"}),
        client.get(f"{ZOOM_DELIVERIES}{pending.pk}/change/"),
    ]
    assert [page.status_code for page in pages] == [200, 200, 200]
    for page in pages:
        html = page.content.decode()
        assert "Mallory" not in html and "mallory.guest" not in html
    assert pages[1].context["cl"].result_count == 0  # the body is not searched either
    assert "Body cleared at" in pages[2].content.decode()

    # Staff resolve it: nothing will send it again, so the body goes at once.
    assert post_action(client, ZOOM_DELIVERIES, "mark_resolved", pending.pk).status_code == 302
    resolved = ZoomWebhookDelivery.objects.get()
    assert resolved.status == ZoomWebhookDelivery.Status.RESOLVED and resolved.body_cleared_at is not None
    assert bytes(resolved.body) == b""
    # A replay would send nothing: refused, and said so.
    response = client.post(ZOOM_DELIVERIES, {"action": "replay_now", "_selected_action": [resolved.pk]}, follow=True)
    assert "not replayed: their body was cleared" in response.content.decode()
    assert ZoomWebhookDelivery.objects.get().status == ZoomWebhookDelivery.Status.RESOLVED
    assert shared_redis().llen("zoom-events") == 0 and len(fake_recall.webhook_receipts) == 1
