"""The Zoom forward runs under a claim, not a row lock: while the fake Recall holds its answer
(it took the event, the answer is late), the row stays writable, a second worker sends nothing,
and an answer that comes after the claim was taken over is not recorded."""

import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection as db
from django.db import transaction
from django.db.models.functions import Now

from recallbots.services import recall_app_register
from tests.webhooks.test_zoom_webhooks import ODD_BODY, post_event
from webhooks.models import ZoomWebhookDelivery
from webhooks.services import delivery_attempt

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def delivery(client, zoom_app, fake_recall) -> ZoomWebhookDelivery:
    recall_app_register(zoom_app=zoom_app)
    assert post_event(client, zoom_app, ODD_BODY).status_code == 200
    return ZoomWebhookDelivery.objects.get()


@contextmanager
def lock_timeout():
    """Whatever this connection waits for a row lock longer than this fails, instead of hanging
    the test on a lock that the POST in flight would hold."""
    with db.cursor() as cursor:
        cursor.execute("SET lock_timeout = '2s'")
    try:
        yield
    finally:
        with db.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


@contextmanager
def forward_in_flight(fake_recall, delivery_id: int):
    """A worker's forward whose answer the fake Recall holds (it has taken the event) until the
    block ends; yields that worker's result, filled in once it has finished."""
    fake_recall.configure(webhook_hold_next=1)
    seen = len(fake_recall.webhook_receipts)
    result: dict = {}

    def worker():
        try:
            result["delay"] = delivery_attempt(delivery_id=delivery_id)
        finally:
            db.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert fake_recall.wait_for_webhook_receipts(seen + 1) == seen + 1, "the forward never reached Recall"
        yield result
    finally:
        fake_recall.release_held_webhooks()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_no_row_lock_is_held_while_recall_answers(delivery, fake_recall):
    with forward_in_flight(fake_recall, delivery.pk), lock_timeout():
        with transaction.atomic():  # another process writes the row meanwhile (staff, local handling)
            assert ZoomWebhookDelivery.objects.filter(pk=delivery.pk).update(last_error="touched") == 1
    delivery.refresh_from_db()
    assert delivery.status == ZoomWebhookDelivery.Status.DELIVERED and delivery.claim_holder is None


def test_a_second_worker_sends_nothing_while_the_claim_is_held(delivery, fake_recall):
    with forward_in_flight(fake_recall, delivery.pk) as first, lock_timeout():
        assert delivery_attempt(delivery_id=delivery.pk) is None  # returns at once: the holder owns the chain
        assert len(fake_recall.webhook_receipts) == 1
    assert first == {"delay": None}
    assert delivery_attempt(delivery_id=delivery.pk) is None  # delivered: the sweeper's late message too
    delivery.refresh_from_db()
    assert len(fake_recall.webhook_receipts) == 1  # exactly one forward in the claim period
    assert (delivery.status, delivery.attempts, delivery.attempt_log.count()) == ("delivered", 1, 1)


def test_an_answer_after_the_claim_was_taken_over_is_not_stored(delivery, fake_recall):
    with forward_in_flight(fake_recall, delivery.pk) as stale, lock_timeout():
        # Recall is slow past the claim: by the database's clock the claim has run out.
        ZoomWebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=Now() - timedelta(seconds=1))
        fake_recall.configure(webhook_fail_next=[503])
        delay = delivery_attempt(delivery_id=delivery.pk)  # the next holder's forward: Recall 503
        assert delay is not None
    assert stale == {"delay": None}  # the stale holder's 200 came last; its worker schedules nothing
    delivery.refresh_from_db()
    assert [r["answered"] for r in fake_recall.webhook_receipts] == [200, 503]  # one forward per claim
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 1, "HTTP 503")
    assert delivery.delivered_at is None and delivery.claim_holder is None
    log = list(delivery.attempt_log.order_by("attempted_at").values_list("status_code", "error"))
    assert log == [(503, ""), (200, "claim lost (taken over or resolved): outcome not stored")]


def test_staff_resolving_during_the_post_is_not_overwritten(delivery, fake_recall):
    with forward_in_flight(fake_recall, delivery.pk), lock_timeout():
        assert ZoomWebhookDelivery.objects.filter(pk=delivery.pk).mark_resolved(note="stop") == 1
    delivery.refresh_from_db()
    assert delivery.status == ZoomWebhookDelivery.Status.RESOLVED and delivery.last_error == "stop"
