"""Each Zoom event's handling, and beat's sweep of unhandled events, read the rows they concern,
not every event the app ever received (nothing prunes the deliveries). At 1 000 participant
events a second (issue #24) a per-event scan of the table made the workers fall behind for good.
Counted with PostgreSQL's own per-transaction table statistics."""

import hashlib
import json
from datetime import timedelta

import pytest
from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from webhooks.models import ZoomWebhookDelivery
from webhooks.services import deliveries_sweep, event_handle_locally

pytestmark = pytest.mark.django_db(transaction=True)

STORED = 3000


def delivery_rows_read(fn) -> tuple[object, int]:
    query = "SELECT coalesce(sum(seq_tup_read + idx_tup_fetch), 0) FROM pg_stat_xact_user_tables WHERE relname = %s"
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(query, [ZoomWebhookDelivery._meta.db_table])
        before = cursor.fetchone()[0]
        result = fn()
        cursor.execute(query, [ZoomWebhookDelivery._meta.db_table])
        return result, cursor.fetchone()[0] - before


def delivery(app, n: int, **fields) -> ZoomWebhookDelivery:
    body = json.dumps({"event": "meeting.participant_joined", "event_ts": 1764000000000 + n}).encode()
    return ZoomWebhookDelivery(
        app=app,
        event="meeting.participant_joined",
        body=body,
        body_sha256=hashlib.sha256(body).hexdigest(),
        status=ZoomWebhookDelivery.Status.RESOLVED,
        **fields,
    )


@pytest.fixture
def handled_before(zoom_app):
    long_ago = timezone.now() - timedelta(days=1)
    ZoomWebhookDelivery.objects.bulk_create(delivery(zoom_app, n, processed_at=long_ago) for n in range(STORED))
    ZoomWebhookDelivery.objects.update(received_at=long_ago)
    with db.cursor() as cursor:
        cursor.execute(f"ANALYZE {ZoomWebhookDelivery._meta.db_table}")
    return zoom_app


def test_handling_an_event_reads_only_its_own_rows(handled_before):
    new = delivery(handled_before, STORED + 1)
    new.save()
    _, rows = delivery_rows_read(lambda: event_handle_locally(delivery_id=new.pk))
    new.refresh_from_db()
    assert new.processed_at is not None
    assert rows <= 10, f"handling one event read {rows} of {STORED} stored deliveries"


def test_a_retry_already_handled_is_recognised_by_its_body(handled_before):
    retry = delivery(handled_before, 7, target_url="https://recall.example/hook")  # same body, another row
    retry.save()
    _, rows = delivery_rows_read(lambda: event_handle_locally(delivery_id=retry.pk))
    retry.refresh_from_db()
    assert retry.processed_at is not None and retry.connection_id is None
    assert rows <= 10


def test_the_unhandled_sweep_reads_only_unhandled_rows(handled_before):
    lost = delivery(handled_before, STORED + 2)
    lost.save()
    ZoomWebhookDelivery.objects.filter(pk=lost.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    (due, unhandled), rows = delivery_rows_read(deliveries_sweep)
    assert (due, unhandled) == ([], [lost.pk])
    assert rows <= 10, f"the sweep read {rows} of {STORED} stored deliveries"
