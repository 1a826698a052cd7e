"""A Zoom that is slow, not down: it does the refresh (and the old refresh token dies at once) but
its answer arrives late, or never. Over real HTTP against the fake Zoom."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.db_faults import crash_on
from tests.zoomauth.test_callbacks import assert_bare_token, introspect, path_of
from webhooks.models import Event, EventEndpoint
from zoomauth import zoom
from zoomauth.models import ZoomConnection
from zoomauth.services import ConnectionUnusable, connection_fresh_access_token, connection_refresh_if_due
from zoomauth.services.refresh import RECORD_FAILED_PAUSE_SECONDS
from zoomauth.tasks import connection_refresh, connections_refresh_due

pytestmark = pytest.mark.django_db(transaction=True)


def expire_soon(connection: ZoomConnection, seconds: int = 60) -> None:
    ZoomConnection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() + timedelta(seconds=seconds)
    )


def wait_for_refresh(connection: ZoomConnection, generation: int, timeout: float = 15.0) -> ZoomConnection:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored = ZoomConnection.objects.get(pk=connection.pk)
        if stored.token_generation != generation and stored.refresh_started_at is None:
            return stored
        time.sleep(0.1)
    raise AssertionError("the refresh was not stored")


def test_a_refresh_answered_after_the_callbacks_budget_is_stored_not_sent_again(anon, connection, fake_zoom, settings):
    """Zoom rotates at once but answers 2 s after the callback stopped waiting: the callback says
    503 + Retry-After, the refresh runs on and is stored, nothing is sent twice, no reconnect."""
    settings.CALLBACK_TIME_BUDGET = 2.0
    expire_soon(connection)  # 60 s left: under Recall's 120 s, so it cannot be served as is
    generation = connection.token_generation
    fake_zoom.configure(refresh_answer_delay=4.0)

    response = anon.get(path_of(connection.access_token_callback_url))
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    # Before the refresh answers, another callback joins it rather than sending the same token.
    assert anon.get(path_of(connection.access_token_callback_url)).status_code == 503

    stored = wait_for_refresh(connection, generation)
    assert fake_zoom.counters["refresh"] == 1 and fake_zoom.counters["invalid_grant"] == 0
    assert stored.status == ZoomConnection.Status.ACTIVE
    assert stored.refresh_token in fake_zoom.refresh_tokens  # the live one at Zoom
    fake_zoom.configure(refresh_answer_delay=0.0)
    token = assert_bare_token(anon.get(path_of(connection.access_token_callback_url)))
    assert token == stored.access_token and introspect(fake_zoom, "access_token", token)["valid"] is True


def test_a_stored_token_with_enough_life_is_served_while_the_refresh_is_slow(anon, connection, fake_zoom, settings):
    settings.CALLBACK_TIME_BUDGET = 2.0
    expire_soon(connection, seconds=200)  # under the 300 s the callback wants, over Recall's 120 s
    fake_zoom.configure(refresh_answer_delay=3.0)
    token = assert_bare_token(anon.get(path_of(connection.access_token_callback_url)))
    assert token == connection.access_token
    wait_for_refresh(connection, connection.token_generation)
    assert fake_zoom.counters["invalid_grant"] == 0


def test_beat_waits_for_a_slow_refresh_beyond_the_http_timeout(connection, fake_zoom, settings):
    settings.ZOOM_HTTP_TIMEOUT = 1.0
    expire_soon(connection)
    fake_zoom.configure(refresh_answer_delay=2.5)
    assert connection_refresh_if_due(connection_id=connection.pk) is True
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.status == ZoomConnection.Status.ACTIVE and stored.refresh_token in fake_zoom.refresh_tokens
    assert fake_zoom.counters["invalid_grant"] == 0


def test_a_lost_refresh_answer_ends_in_needs_reconnect_with_an_event_and_touches_nobody_else(
    connection, fake_zoom, client, user
):
    from tests.conftest import connect_via_fake_zoom

    EventEndpoint.objects.create(url="https://customer.example/hooks", description="backend")
    client.force_login(user)
    assert connect_via_fake_zoom(client, fake_zoom, zoom_user_id="zu_bob").status_code == 200
    bob = ZoomConnection.objects.get(zoom_user_id="zu_bob")
    expire_soon(connection)
    expire_soon(bob)
    fake_zoom.configure(refresh_drop_next=1)  # Zoom rotates alice's refresh token, the answer is lost

    from zoomauth import zoom

    with pytest.raises(zoom.ZoomRetryableError):
        connection_refresh_if_due(connection_id=connection.pk)
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.status == ZoomConnection.Status.ACTIVE and stored.refresh_started_at is None
    assert stored.consecutive_failures == 1

    with pytest.raises(ConnectionUnusable):  # the next try: the token sent is dead at Zoom
        connection_refresh_if_due(connection_id=connection.pk)
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.status == ZoomConnection.Status.NEEDS_RECONNECT
    assert Event.objects.filter(type=Event.Type.CONNECTION_NEEDS_RECONNECT, connection_id=connection.pk).count() == 1

    assert connection_refresh_if_due(connection_id=bob.pk) is True
    assert ZoomConnection.objects.get(pk=bob.pk).status == ZoomConnection.Status.ACTIVE


def test_the_needs_reconnect_event_commits_with_the_state_change_or_not_at_all(connection, fake_zoom):
    """The event row is written in the state change's transaction: if that transaction fails, neither
    the state nor the event is there, and the next refresh finds the same dead grant again."""

    EventEndpoint.objects.create(url="https://customer.example/hooks", description="backend")
    fake_zoom.grants[("fake-client-id", "zu_alice")] += 1  # the grant died at Zoom
    expire_soon(connection)
    with crash_on("webhooks_event", "INSERT"), pytest.raises(Exception, match="simulated crash"):
        connection_fresh_access_token(connection_id=connection.pk, min_validity=timedelta(minutes=5))
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.status == ZoomConnection.Status.ACTIVE
    assert not Event.objects.exists()
    # Zoom has answered: the lease is let go, and the next attempt may ask after a short pause
    # (not a whole lease later); within it, Zoom is not asked.
    assert stored.refresh_lease_holder is None and stored.refresh_started_at is None
    assert stored.refresh_not_before is not None
    assert 0 < (stored.refresh_not_before - timezone.now()).total_seconds() <= RECORD_FAILED_PAUSE_SECONDS
    refreshes = fake_zoom.counters["invalid_grant"]
    with pytest.raises(zoom.ZoomRetryableError):
        connection_fresh_access_token(connection_id=connection.pk, min_validity=timedelta(minutes=5))
    assert fake_zoom.counters["invalid_grant"] == refreshes
    ZoomConnection.objects.filter(pk=connection.pk).update(refresh_not_before=timezone.now())
    with pytest.raises(ConnectionUnusable):
        connection_fresh_access_token(connection_id=connection.pk, min_validity=timedelta(minutes=5))
    assert ZoomConnection.objects.get(pk=connection.pk).status == ZoomConnection.Status.NEEDS_RECONNECT
    assert Event.objects.filter(type=Event.Type.CONNECTION_NEEDS_RECONNECT).count() == 1


def test_zooms_retry_after_on_a_refresh_is_honoured_across_ticks(connection, fake_zoom):
    expire_soon(connection)
    fake_zoom.configure(rate_limit_per_second=0, fail_next=1, fail_status=429, retry_after="120")
    connection_refresh.run(connection.pk)
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.refresh_not_before is not None
    assert stored.refresh_not_before > timezone.now() + timedelta(seconds=100)
    assert connections_refresh_due.run() == 0  # due, but Zoom asked for two minutes
    ZoomConnection.objects.filter(pk=connection.pk).update(refresh_not_before=timezone.now())
    assert connections_refresh_due.run() == 1


def test_nobody_holds_a_pool_connection_while_zoom_answers_a_refresh(connection, fake_zoom, settings):
    """Callbacks waiting for a slow refresh, and the refresh itself, hand their database
    connections back to the pool while they wait: other requests never queue behind them."""
    import threading
    import time

    from django.db import connection as db
    from django.db import connections
    from django.test import Client

    settings.CALLBACK_TIME_BUDGET = 2.0
    expire_soon(connection)
    fake_zoom.configure(refresh_answer_delay=3.0)
    url = path_of(connection.access_token_callback_url)
    db.close()  # this test's own thread holds none
    pool = db.pool
    statuses: list[int] = []

    def call():
        try:
            statuses.append(Client().get(url).status_code)
        finally:
            connections.close_all()  # this thread's

    callers = [threading.Thread(target=call) for _ in range(3)]
    started = time.monotonic()
    for caller in callers:
        caller.start()
    held = []
    # While the callers wait (until their 2 s budget) and Zoom takes 3 s to answer the refresh:
    while time.monotonic() - started < 1.6:
        if time.monotonic() - started > 0.8:
            stats = pool.get_stats()
            held.append(stats["pool_size"] - stats["pool_available"])
        time.sleep(0.02)
    for caller in callers:
        caller.join()
    assert statuses == [503, 503, 503]  # the stored token has 60 s left: under Recall's 120 s
    assert held and max(held) == 0, held  # before: 4 (three waiting callbacks and the refresh)
    wait_for_refresh(connection, connection.token_generation)
