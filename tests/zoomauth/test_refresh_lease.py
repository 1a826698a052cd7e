"""The refresh lease: one total deadline per refresh request, the database's clock, and a fence
(the holder's id) so that only the holder stores Zoom's answer or releases the lease. Over real
HTTP against the fake Zoom, on PostgreSQL."""

import socket
import threading
import time
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection as db
from django.utils import timezone

from zoomauth import zoom
from zoomauth.models import ZoomConnection
from zoomauth.services import (
    RefreshLeaseLost,
    _lease_seconds,
    _recover_from_invalid_grant,
    connection_fresh_access_token,
    connection_store_refreshed_tokens,
)

pytestmark = pytest.mark.django_db(transaction=True)


def take(connection: ZoomConnection, holder: uuid.UUID) -> bool:
    return ZoomConnection.objects.take_refresh_lease(
        connection_id=connection.pk,
        token_generation=connection.token_generation,
        holder=holder,
        seconds=_lease_seconds(),
    )


def taken_over(connection: ZoomConnection) -> tuple[uuid.UUID, uuid.UUID]:
    """A first holder's lease ran out and a second holder took it: (first, second)."""
    first, second = uuid.uuid4(), uuid.uuid4()
    assert take(connection, first)
    age_lease(connection, _lease_seconds() + 1)
    assert take(connection, second)
    return first, second


def age_lease(connection: ZoomConnection, seconds: float) -> None:
    """The lease was taken `seconds` ago by the database's clock."""
    with db.cursor() as cursor:
        cursor.execute(
            "UPDATE zoomauth_zoomconnection SET refresh_started_at = now() - make_interval(secs => %s) WHERE id = %s",
            [seconds, connection.pk],
        )


def tokens(n: int) -> zoom.TokenSet:
    return zoom.TokenSet(access_token=f"late-access-{n}", refresh_token=f"late-refresh-{n}", expires_in=3599, scope="")


def test_a_host_whose_clock_runs_20_s_ahead_cannot_take_a_live_lease(connection, settings):
    assert _lease_seconds() == settings.ZOOM_REFRESH_TIMEOUT + settings.ZOOM_REFRESH_LEASE_MARGIN_SECONDS == 75
    first, ahead = uuid.uuid4(), uuid.uuid4()
    assert take(connection, first)
    # 60 s into the first holder's refresh (by the database's clock): still within its 75 s.
    age_lease(connection, 60)
    shifted = timezone.now() + timedelta(seconds=20)
    with mock.patch("django.utils.timezone.now", return_value=shifted):
        assert not take(connection, ahead)
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.refresh_lease_holder == first
    # Once the lease is really over (by the database's clock), anyone may take it.
    age_lease(connection, 76)
    assert take(connection, ahead)
    assert ZoomConnection.objects.get(pk=connection.pk).refresh_lease_holder == ahead


def test_a_holder_whose_lease_was_taken_over_cannot_store_its_answer(connection):
    first, second = taken_over(connection)
    with pytest.raises(RefreshLeaseLost):
        connection_store_refreshed_tokens(
            connection_id=connection.pk, holder=first, sent_generation=connection.token_generation, tokens=tokens(1)
        )
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.access_token == connection.access_token and stored.token_generation == connection.token_generation
    assert stored.refresh_lease_holder == second and stored.refresh_started_at is not None
    # The holder stores.
    connection_store_refreshed_tokens(
        connection_id=connection.pk, holder=second, sent_generation=connection.token_generation, tokens=tokens(2)
    )
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.access_token == "late-access-2" and stored.refresh_lease_holder is None


def test_a_holder_whose_lease_was_taken_over_cannot_release_it(connection):
    first, second = taken_over(connection)
    assert not ZoomConnection.objects.release_refresh_lease(connection_id=connection.pk, holder=first, failure="x")
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.refresh_lease_holder == second and stored.refresh_started_at is not None
    assert stored.consecutive_failures == 0
    assert not take(connection, first)  # the second holder's lease still stands
    assert ZoomConnection.objects.release_refresh_lease(connection_id=connection.pk, holder=second)
    assert ZoomConnection.objects.get(pk=connection.pk).refresh_started_at is None


def test_a_holder_whose_lease_was_taken_over_does_not_mark_needs_reconnect(connection):
    """Its invalid_grant may be the new holder's rotation: the new holder decides."""
    first, second = taken_over(connection)
    with pytest.raises(RefreshLeaseLost):
        _recover_from_invalid_grant(
            connection_id=connection.pk,
            sent_generation=connection.token_generation,
            min_validity=timedelta(0),
            holder=first,
        )
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.status == ZoomConnection.Status.ACTIVE and stored.refresh_lease_holder == second


def test_a_refresh_whose_lease_is_taken_while_zoom_answers_stores_nothing(connection, fake_zoom):
    ZoomConnection.objects.filter(pk=connection.pk).update(access_token_expires_at=timezone.now())
    fake_zoom.configure(refresh_answer_delay=1.5)
    intruder = uuid.uuid4()

    def take_over():
        from django.db import connections

        try:
            deadline = time.monotonic() + 5
            while fake_zoom.counters["refresh"] == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            ZoomConnection.objects.filter(pk=connection.pk).update(refresh_lease_holder=intruder)
        finally:
            connections.close_all()  # this thread's: else it keeps a pool connection after the test

    thief = threading.Thread(target=take_over)
    thief.start()
    try:
        with pytest.raises(RefreshLeaseLost):
            connection_fresh_access_token(connection_id=connection.pk, min_validity=timedelta(minutes=5))
    finally:
        thief.join()
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.token_generation == connection.token_generation and stored.refresh_lease_holder == intruder


def test_a_dribbled_refresh_answer_is_cut_at_the_total_deadline(fake_zoom, zoom_app):
    """Status line after 1.2 s, body after 2.4 s: each read is within 2 s, the whole is not."""
    fake_zoom.configure(refresh_status_at=1.2, refresh_body_at=2.4)
    fake_zoom.refresh_tokens["rt-dribble"] = {"client_id": "fake-client-id", "user_id": "zu_alice", "generation": 0}
    fake_zoom.grants[("fake-client-id", "zu_alice")] = 0
    with pytest.raises(zoom.ZoomRetryableError, match="did not answer within 2.0s"):
        zoom.refresh_tokens(
            client_id="fake-client-id", client_secret="fake-client-secret", refresh_token="rt-dribble", timeout=2.0
        )
    assert fake_zoom.counters["refresh"] == 1  # sent once, rotated at Zoom, its answer given up


def test_a_refresh_stuck_in_name_resolution_is_never_sent_after_its_deadline(fake_zoom, zoom_app, settings):
    """Name resolution is outside requests' timeouts. A resolver that answers after the deadline
    (stdlib patched: nothing else makes one hang) must not let the request go out late, when
    another process may already have sent the same refresh token."""
    port = int(fake_zoom.base_url.rsplit(":", 1)[1])
    settings.ZOOM_OAUTH_BASE_URL = f"http://zoom-dns.invalid:{port}"
    real = socket.getaddrinfo
    resolved = threading.Event()

    def slow_resolver(host, *args, **kwargs):
        if host == "zoom-dns.invalid":
            time.sleep(1.5)
            try:
                return real("127.0.0.1", *args, **kwargs)
            finally:
                resolved.set()
        return real(host, *args, **kwargs)

    with mock.patch("socket.getaddrinfo", slow_resolver):
        with pytest.raises(zoom.ZoomRetryableError, match="within 0.5s"):
            zoom.refresh_tokens(
                client_id="fake-client-id", client_secret="fake-client-secret", refresh_token="rt-x", timeout=0.5
            )
        assert resolved.wait(5)
        time.sleep(0.5)  # time for a late request to reach the fake
    assert fake_zoom.counters["refresh"] == 0
