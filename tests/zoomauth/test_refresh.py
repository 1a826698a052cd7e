"""Race-free refresh on PostgreSQL, against the fake Zoom over real HTTP."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.db import connections
from django.utils import timezone

from tests.conftest import connect_via_fake_zoom
from tests.db_faults import crash_on
from tests.rows import healthy_connections
from zoomauth.models import ZoomConnection
from zoomauth.services import ConnectionUnusable, connection_fresh_access_token, connection_refresh_if_due
from zoomauth.tasks import connections_refresh_due

pytestmark = pytest.mark.django_db(transaction=True)


def introspect(fake_zoom, token: str) -> dict:
    return requests.post(
        fake_zoom.base_url + "/_control/introspect", json={"kind": "access_token", "token": token}, timeout=5
    ).json()


def expire_soon(connection: ZoomConnection, seconds: int = 30) -> None:
    ZoomConnection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() + timedelta(seconds=seconds)
    )


def test_fifty_concurrent_requests_cause_exactly_one_refresh(connection, fake_zoom):
    expire_soon(connection)
    fake_zoom.configure(refresh_delay=0.3)  # widen the race window

    def fresh(_):
        try:
            return connection_fresh_access_token(connection_id=connection.pk, min_validity=timedelta(minutes=5)).token
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=50) as pool:
        tokens = list(pool.map(fresh, range(50)))

    assert fake_zoom.counters["refresh"] == 1
    assert fake_zoom.counters["invalid_grant"] == 0
    assert len(set(tokens)) == 1
    assert introspect(fake_zoom, tokens[0])["valid"] is True
    connection.refresh_from_db()
    assert connection.access_token == tokens[0]


def test_refresh_saves_rotated_refresh_token_and_never_sends_one_twice(connection, fake_zoom):
    old_refresh = connection.refresh_token
    for _ in range(3):
        expire_soon(connection)
        connection_fresh_access_token(connection_id=connection.pk, min_validity=timedelta(minutes=5))
    connection.refresh_from_db()
    assert connection.refresh_token != old_refresh
    assert connection.refresh_token in fake_zoom.refresh_tokens  # the live one at Zoom
    assert fake_zoom.counters["refresh"] == 3 and fake_zoom.counters["invalid_grant"] == 0


def test_fresh_token_is_served_without_calling_zoom(connection, fake_zoom):
    fresh = connection_fresh_access_token(connection_id=connection.pk, min_validity=timedelta(minutes=5))
    assert fresh.zoom_calls == 0 and fake_zoom.counters["refresh"] == 0


def test_revoked_grant_marks_needs_reconnect_and_keeps_the_row(connection, fake_zoom, client):
    fake_zoom.grants[("fake-client-id", "zu_alice")] += 1  # revoked at Zoom (e.g. user removed the app)
    expire_soon(connection)
    with pytest.raises(ConnectionUnusable):
        connection_fresh_access_token(connection_id=connection.pk, min_validity=timedelta(minutes=5))
    connection.refresh_from_db()
    assert connection.status == ZoomConnection.Status.NEEDS_RECONNECT
    assert "invalid_grant" in connection.last_error
    assert connection.refresh_token  # kept until the user reconnects
    page = client.get("/").content.decode()
    assert "Reconnect" in page


def test_invalid_grant_after_a_lost_race_uses_the_winners_tokens(connection, fake_zoom):
    """Another writer rotated the tokens after we read the row: Zoom refuses ours, theirs is live."""
    from zoomauth.services import _recover_from_invalid_grant

    sent_generation = connection.token_generation
    connection.store_tokens(access_token="winner-token", refresh_token="winner-rt", expires_in=3599, scope="")
    connection.save()
    fresh = _recover_from_invalid_grant(
        connection_id=connection.pk,
        sent_generation=sent_generation,
        min_validity=timedelta(minutes=5),
        holder=uuid.uuid4(),
    )
    assert fresh.token == "winner-token"
    connection.refresh_from_db()
    assert connection.status == ZoomConnection.Status.ACTIVE


def test_crash_between_zoom_answer_and_commit(connection, fake_zoom, client):
    """Zoom rotated the refresh token, but our commit failed: the old one is dead at Zoom.

    The broker cannot recover the lost token (Zoom has no grace period). What the user sees:
    the next refresh fails with invalid_grant, the connection is marked 'needs reconnect' and
    the token callbacks answer 410 until the user reconnects; nothing is served half-saved.
    """
    expire_soon(connection)
    stored_before = ZoomConnection.objects.get(pk=connection.pk).refresh_token
    with crash_on("zoomauth_zoomconnection", "UPDATE", when="NEW.refresh_token IS DISTINCT FROM OLD.refresh_token"):
        with pytest.raises(Exception, match="simulated crash"):
            connection_fresh_access_token(connection_id=connection.pk, min_validity=timedelta(minutes=5))
    assert fake_zoom.counters["refresh_success"] == 1
    assert ZoomConnection.objects.get(pk=connection.pk).refresh_token == stored_before  # nothing half-saved

    with pytest.raises(ConnectionUnusable):
        connection_fresh_access_token(connection_id=connection.pk, min_validity=timedelta(minutes=5))
    connection.refresh_from_db()
    assert connection.status == ZoomConnection.Status.NEEDS_RECONNECT
    response = client.get(connection.access_token_callback_url.replace("https://broker.example.test", ""))
    assert response.status_code == 410
    assert response.content == b"The Zoom connection needs reconnecting by its user."


def test_due_for_refresh_selects_only_due_rows(zoom_app, user, client, fake_zoom):
    client.force_login(user)
    for zoom_user in ("zu_alice", "zu_bob"):
        connect_via_fake_zoom(client, fake_zoom, zoom_user)
    fake_zoom.add_user(id="zu_carol", email="carol@zoom.example")
    connect_via_fake_zoom(client, fake_zoom, "zu_carol")
    alice, bob, carol = (ZoomConnection.objects.get(zoom_user_id=z) for z in ("zu_alice", "zu_bob", "zu_carol"))
    expire_soon(alice)
    ZoomConnection.objects.filter(pk=bob.pk).update(last_refreshed_at=timezone.now() - timedelta(days=30))
    assert set(ZoomConnection.objects.due_for_refresh().values_list("pk", flat=True)) == {alice.pk, bob.pk}
    assert connections_refresh_due.run() == 2

    assert connection_refresh_if_due(connection_id=alice.pk) is True  # expiring
    assert connection_refresh_if_due(connection_id=bob.pk) is True  # keep-alive
    assert connection_refresh_if_due(connection_id=carol.pk) is False  # not due: untouched
    assert fake_zoom.counters["refresh"] == 2
    assert not ZoomConnection.objects.due_for_refresh().exists()


def test_due_query_uses_the_indexes_not_a_table_scan(zoom_app, user):
    """With many healthy rows, the planner answers "who is due" from the two indexes alone."""
    from django.db import connection as conn

    healthy_connections(user, zoom_app, 5000, refreshed_ago=timedelta(minutes=10))
    with conn.cursor() as cursor:
        cursor.execute("ANALYZE zoomauth_zoomconnection")
    plan = ZoomConnection.objects.due_for_refresh().explain()
    assert "Seq Scan" not in plan
    assert "conn_due_expiry" in plan and "conn_due_keepalive" in plan


def _due_rows(zoom_app, user, n: int) -> list[int]:
    now = timezone.now()
    rows = ZoomConnection.objects.bulk_create(
        ZoomConnection(
            user=user,
            app=zoom_app,
            zoom_user_id=f"zu_due_{i}",
            access_token_expires_at=now + timedelta(minutes=1),
            last_refreshed_at=now,
        )
        for i in range(n)
    )
    return [row.pk for row in rows]


def test_beat_enqueues_one_refresh_task_per_due_connection_and_never_twice(zoom_app, user, fake_zoom):
    from brokerproject.redis_client import shared_redis
    from tests.conftest import run_queued_tasks
    from zoomauth.tasks import CHUNK_SIZE, connection_refresh

    ids = _due_rows(zoom_app, user, 2 * CHUNK_SIZE + 50)
    queue = shared_redis()
    assert connections_refresh_due.run() == len(ids)
    assert queue.llen("celery") == 3  # the tick: one message per chunk of CHUNK_SIZE
    assert connections_refresh_due.run() == 0  # the next tick skips what is still queued
    assert queue.llen("celery") == 3
    assert run_queued_tasks("celery") == 3  # a worker fans each chunk out...
    assert queue.llen("refresh") == len(ids)  # ...into one refresh task per connection
    assert connections_refresh_due.run() == 0  # still claimed while their tasks wait
    fake_zoom.configure(fail_next=10, fail_status=503)
    connection_refresh.run(ids[0])  # a worker ran it; Zoom failed, so it is still due
    assert connections_refresh_due.run() == 1  # released by its task: claimable again
