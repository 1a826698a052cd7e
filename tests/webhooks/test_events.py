"""Events to the customer's backend over real HTTP: signed (verified with the standardwebhooks
library), durable while the receiver is down, in order per connection."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection as db
from django.db.models.functions import Now
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from fakes.http import FakeServer, json_response
from webhooks import events
from webhooks.models import Event, EventDelivery, EventEndpoint
from zoomauth.models import ZoomConnection

# Committed rows: refreshes run on their own thread and database connection.
pytestmark = pytest.mark.django_db(transaction=True)


class Receiver(FakeServer):
    name = "customer-backend"

    def __init__(self):
        super().__init__()
        self.received: list[dict] = []
        self.status = 200
        self.hold_next = 0  # answers (decided on arrival) that wait until `gate` is set
        self.gate = threading.Event()
        self.route("POST", "/hooks", self.hook)

    def hook(self, req):
        with self.lock:
            self.received.append({"body": req.body, "headers": req.headers})
            status, hold = self.status, self.hold_next > 0
            if hold:
                self.hold_next -= 1
        if hold:
            self.gate.wait(timeout=30)
        return json_response(status, {})


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def endpoint(db, receiver):
    return EventEndpoint.objects.create(url=receiver.base_url + "/hooks", secret=EventEndpoint.new_secret())


def send_pending() -> None:
    """What the worker does with the queued sends (the queue itself is tested in test_tasks)."""
    for delivery in EventDelivery.objects.filter(status=EventDelivery.Status.PENDING).order_by("event__created_at"):
        events.event_delivery_attempt(delivery_id=delivery.pk)


def verified(endpoint, message) -> dict:
    return Webhook(endpoint.secret).verify(message["body"], message["headers"])


def test_a_revoke_at_zoom_gives_exactly_one_signed_needs_reconnect(connection, endpoint, receiver, fake_zoom, client):
    fake_zoom.grants[("fake-client-id", "zu_alice")] += 1  # the user removed the app in Zoom
    ZoomConnection.objects.filter(pk=connection.pk).update(access_token_expires_at=timezone.now())
    client.logout()
    url = connection.access_token_callback_url.replace("https://broker.example.test", "")
    assert client.get(url).status_code == 410
    assert client.get(url).status_code == 410  # asked again: still one event
    send_pending()
    assert len(receiver.received) == 1
    payload = verified(endpoint, receiver.received[0])
    assert payload["type"] == "connection.needs_reconnect"
    assert payload["data"]["connection"]["id"] == str(connection.public_id)
    assert payload["data"]["connection"]["status"] == "needs_reconnect"
    assert "callback_urls" not in payload["data"]["connection"]
    assert connection.callback_secret not in receiver.received[0]["body"].decode()


def test_events_survive_the_receiver_being_down_and_keep_their_order(connection, endpoint, receiver, api_client, staff):
    from zoomauth.services import connection_disconnect

    receiver.status = 503
    events.event_emit(type=Event.Type.BOT_STATUS_CHANGED, data={"n": 1}, connection_id=connection.pk)
    connection_disconnect(connection=connection, reason="test")
    send_pending()
    first, second = EventDelivery.objects.order_by("event__created_at")
    assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 503)
    assert first.next_attempt_at > timezone.now()
    assert second.attempts == 0  # waits behind the first: in order per connection
    receiver.status = 200
    EventDelivery.objects.update(next_attempt_at=timezone.now())
    # Only the head of the line is due: the follower is sent when the head is done.
    assert events.event_deliveries_due(grace_seconds=-60) == [first.pk]
    delay, following = events.event_delivery_attempt(delivery_id=first.pk)
    assert delay is None and following == second.pk  # the success hands over to the next in line
    events.event_delivery_attempt(delivery_id=second.pk)
    types = [verified(endpoint, m)["type"] for m in receiver.received if m["headers"].get("webhook-id")]
    assert types[-2:] == ["bot.status_changed", "connection.revoked"]
    assert set(EventDelivery.objects.values_list("status", flat=True)) == {"delivered"}
    ids = [m["headers"]["webhook-id"] for m in receiver.received]
    assert ids[0] == ids[1]  # a retry carries the same webhook-id, for the receiver's dedup


def test_one_retry_chain_per_delivery(connection, endpoint, receiver):
    """A failed send schedules its retry; the sweeper's message or a duplicate arriving before
    then finds nothing to do, so the receiver never gets two sends of one try."""
    receiver.status = 503
    events.event_emit(type=Event.Type.BOT_STATUS_CHANGED, data={}, connection_id=connection.pk)
    delivery = EventDelivery.objects.get()
    delay, _ = events.event_delivery_attempt(delivery_id=delivery.pk)
    assert delay is not None and len(receiver.received) == 1
    assert events.event_delivery_attempt(delivery_id=delivery.pk) == (None, None)  # a second chain: nothing
    assert len(receiver.received) == 1 and EventDelivery.objects.get().attempts == 1


def test_a_long_line_for_one_connection_does_not_starve_the_others(connection, endpoint, receiver):
    other = ZoomConnection.objects.create(user=connection.user, app=connection.app, zoom_user_id="zu_other")
    for n in range(600):  # the receiver is down for this connection's events: a long line
        events.event_emit(type=Event.Type.BOT_STATUS_CHANGED, data={"n": n}, connection_id=connection.pk)
    events.event_emit(type=Event.Type.BOT_STATUS_CHANGED, data={}, connection_id=other.pk)
    due = events.event_deliveries_due(grace_seconds=-60)
    heads = EventDelivery.objects.order_by("event__created_at", "pk")
    assert due == [heads.first().pk, heads.last().pk]  # one head per connection, the other's included


def test_a_delivery_gives_up_after_the_retry_period(connection, endpoint, receiver, settings):
    receiver.status = 500
    events.event_emit(type=Event.Type.BOT_STATUS_CHANGED, data={}, connection_id=connection.pk)
    Event.objects.update(created_at=timezone.now() - settings.EVENT_RETRY_PERIOD - timedelta(minutes=1))
    send_pending()
    assert EventDelivery.objects.get().status == "failed"


def test_connecting_emits_connected_and_bot_status_emits_status_changed(
    endpoint, receiver, zoom_app, user, client, fake_zoom, django_capture_on_commit_callbacks
):
    from recallbots.models import Bot
    from recallbots.services import bot_record_status
    from tests.conftest import connect_via_fake_zoom

    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):  # connected is sent once the connect commits
        connect_via_fake_zoom(client, fake_zoom)
    connection = ZoomConnection.objects.get()
    bot = Bot.objects.create(user=user, connection=connection, meeting_url="https://zoom.us/j/1", recall_id="rb_9")
    bot_record_status(recall_bot_id="rb_9", code="in_call_recording", sub_code=None, occurred_at=None, webhook_id="w1")
    send_pending()
    payloads = [verified(endpoint, m) for m in receiver.received]
    assert [p["type"] for p in payloads] == ["connection.connected", "bot.status_changed"]
    assert payloads[1]["data"]["bot"]["id"] == str(bot.public_id)
    assert payloads[1]["data"]["status"]["code"] == "in_call_recording"


def test_the_admin_shows_an_endpoint_secret_once(client, staff, receiver):
    client.force_login(staff)
    response = client.post(
        "/admin/webhooks/eventendpoint/add/",
        {"url": receiver.base_url + "/hooks", "description": "prod", "enabled": "on"},
        follow=True,
    )
    endpoint = EventEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret in " ".join(str(m) for m in response.context["messages"])
    page = client.get(f"/admin/webhooks/eventendpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in page
    assert json.dumps(endpoint.secret) not in client.get("/admin/webhooks/eventendpoint/").content.decode()


def test_a_send_that_outlived_its_claim_does_not_overwrite_the_next_holders_answer(connection, endpoint, receiver):
    """The backend answers the first send late, after the claim ran out and a second send took it
    over: the second's answer (503, retry later) stands, not the first's late 200."""
    events.event_emit(type=Event.Type.BOT_STATUS_CHANGED, data={}, connection_id=connection.pk)
    delivery = EventDelivery.objects.get()
    receiver.hold_next = 1
    late: dict = {}

    def first_send():
        try:
            late["result"] = events.event_delivery_attempt(delivery_id=delivery.pk)
        finally:
            db.close()

    thread = threading.Thread(target=first_send)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(receiver.received) == 1
        EventDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=Now() - timedelta(seconds=1))
        receiver.status = 503
        delay, _ = events.event_delivery_attempt(delivery_id=delivery.pk)
        assert delay is not None
    finally:
        receiver.gate.set()
        thread.join(timeout=30)
    assert late == {"result": (None, None)}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 503)
    assert delivery.delivered_at is None and delivery.claim_holder is None
