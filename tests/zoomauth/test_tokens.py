"""The token hot path under Zoom's disagreements and under herds, over real HTTP with the fake Zoom."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.utils import timezone

from brokerproject.throttling import Window, counts
from tests.zoomauth.test_callbacks import MEETING, assert_bare_token, introspect, path_of
from zoomauth.models import CallbackLog, ZoomConnection
from zoomauth.services import connection_fresh_access_token

# Committed rows: refreshes run on their own thread and database connection.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def meeting(fake_zoom):
    fake_zoom.add_meeting(id=MEETING, host_id="zu_alice")
    fake_zoom.join(MEETING, "zu_alice")
    return MEETING


def expire_at_zoom(fake_zoom, user_id: str = "zu_alice") -> None:
    """Zoom kills the access token although the broker's stored expiry is an hour away."""
    requests.post(
        fake_zoom.base_url + "/_control/expire-access-tokens", json={"user_id": user_id, "seconds_left": 0}, timeout=5
    )


# --- self-healing ----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "introspect_kind"), [("zak", "zak"), ("obf", "obf"), ("join-token", "join_token")])
def test_a_token_zoom_killed_early_is_refreshed_once_and_the_mint_retried(
    anon, connection, fake_zoom, meeting, kind, introspect_kind
):
    dead = connection.access_token
    expire_at_zoom(fake_zoom)
    token = assert_bare_token(anon.get(path_of(connection.callback_url(kind, meeting_id=meeting))))
    assert introspect(fake_zoom, introspect_kind, token, meeting)["valid"] is True
    assert fake_zoom.counters["refresh_success"] == 1
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.access_token != dead and stored.status == ZoomConnection.Status.ACTIVE
    log = CallbackLog.objects.get()
    assert log.status_code == 200 and log.zoom_calls == 3  # the refused mint, the refresh, the mint


def test_access_token_callback_never_serves_a_token_zoom_refused(anon, connection, fake_zoom, meeting):
    dead = connection.access_token
    expire_at_zoom(fake_zoom)
    fake_zoom.configure(fail_next=100, fail_status=503)  # the refresh cannot happen now
    response = anon.get(path_of(connection.callback_url("obf", meeting_id=meeting)))
    assert response.status_code == 502
    # The mint saw Zoom refuse the token: it is marked, and the access-token callback, which
    # serves a stored token while Zoom fails, must not hand this one out.
    response = anon.get(path_of(connection.access_token_callback_url))
    assert response.status_code == 502 and response.content != dead.encode()
    fake_zoom.configure(fail_next=0)
    token = assert_bare_token(anon.get(path_of(connection.access_token_callback_url)))
    assert token != dead and introspect(fake_zoom, "access_token", token)["valid"] is True


def test_a_dead_grant_found_while_healing_is_410(anon, connection, fake_zoom, meeting):
    expire_at_zoom(fake_zoom)
    fake_zoom.grants[("fake-client-id", "zu_alice")] += 1  # the user removed the app in Zoom
    response = anon.get(path_of(connection.zak_url))
    assert response.status_code == 410
    assert ZoomConnection.objects.get(pk=connection.pk).status == ZoomConnection.Status.NEEDS_RECONNECT


# --- ZAK single-flight -------------------------------------------------------------------------


def _herd(url: str, n: int) -> list[requests.Response]:
    start = threading.Barrier(n)

    def one(_):
        session = requests.Session()
        start.wait()
        return session.get(url, timeout=10)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_a_zak_herd_costs_exactly_one_zoom_call(connection, fake_zoom, live_server):
    fake_zoom.latency = 0.2
    responses = _herd(live_server.url + path_of(connection.zak_url), 40)
    assert [r.status_code for r in responses] == [200] * 40
    assert len({r.text for r in responses}) == 1
    assert fake_zoom.counters["zak"] == 1


def test_a_zak_herd_after_zoom_killed_the_token_costs_one_refresh_and_one_zak(connection, fake_zoom, live_server):
    expire_at_zoom(fake_zoom)
    fake_zoom.latency = 0.2
    responses = _herd(live_server.url + path_of(connection.zak_url), 40)
    assert [r.status_code for r in responses] == [200] * 40
    assert introspect(fake_zoom, "zak", responses[0].text)["valid"] is True
    assert (fake_zoom.counters["refresh_success"], fake_zoom.counters["zak"]) == (1, 1)


def test_a_failing_zak_mint_hands_its_error_to_the_herd_instead_of_a_stampede(connection, fake_zoom, live_server):
    fake_zoom.latency = 0.2
    # Zoom rate-limits beyond the budget: the one caller that went to Zoom gives up after one call.
    fake_zoom.configure(fail_next=1000, fail_status=429, retry_after="30")
    responses = _herd(live_server.url + path_of(connection.zak_url), 40)
    assert [r.status_code for r in responses] == [503] * 40
    assert all(r.headers["Retry-After"] for r in responses)
    assert fake_zoom.counters["faults"] == 1  # one Zoom call for the whole herd: the others got its answer


def test_the_shared_zak_survives_a_token_refresh(anon, connection, fake_zoom):
    first = assert_bare_token(anon.get(path_of(connection.zak_url)))
    connection_fresh_access_token(
        connection_id=connection.pk, min_validity=timezone.timedelta(0), refresh_if_refreshed_before=timezone.now()
    )
    assert fake_zoom.counters["refresh_success"] == 1
    assert assert_bare_token(anon.get(path_of(connection.zak_url))) == first
    assert fake_zoom.counters["zak"] == 1


def test_disconnecting_drops_the_shared_zak(anon, connection, fake_zoom, client, user):
    from tests.conftest import connect_via_fake_zoom
    from zoomauth.services import connection_disconnect

    first = assert_bare_token(anon.get(path_of(connection.zak_url)))
    connection_disconnect(connection=connection)
    client.force_login(user)
    connect_via_fake_zoom(client, fake_zoom)
    client.logout()
    reconnected = ZoomConnection.objects.get(pk=connection.pk)
    assert assert_bare_token(anon.get(path_of(reconnected.zak_url))) != first


# --- throttles -------------------------------------------------------------------------------


@pytest.mark.usefixtures("one_window")
def test_wrong_secrets_from_anywhere_cannot_use_up_a_connections_allowance(anon, connection, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "NUM_PROXIES": 1,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "callback_connection": "5/min",
        },
    }
    bad = path_of(connection.zak_url).replace(connection.callback_secret, "guess")
    for i in range(30):
        assert anon.get(bad, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code == 401
    response = anon.get(path_of(connection.zak_url), HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert response.status_code == 200
    for _ in range(4):
        anon.get(path_of(connection.zak_url), HTTP_X_FORWARDED_FOR="198.51.100.7")
    response = anon.get(path_of(connection.zak_url), HTTP_X_FORWARDED_FOR="198.51.100.8")
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1  # the real allowance still holds


def test_a_throttle_counter_is_one_integer_whatever_the_rate(db, settings):
    window = Window.for_rate("probe", "198.51.100.7", "100000/day")
    assert window.period == 86400
    assert counts([window, window], increment=[True, True]) == [1, 2]
    assert counts([window], increment=[False]) == [2]


# --- the audit, in batches -------------------------------------------------------------------


def test_the_audit_is_written_in_batches_after_the_answers(connection, live_server, settings):
    import time

    from zoomauth.audit import writer

    settings.CALLBACK_AUDIT_FLUSH_SECONDS = 1.0
    batches_before = writer.batches
    session = requests.Session()
    url = live_server.url + path_of(connection.access_token_callback_url)
    assert [session.get(url, timeout=10).status_code for _ in range(30)] == [200] * 30
    bad = session.get(url.replace(connection.callback_secret, "wrong"), timeout=10)
    assert bad.status_code == 401
    for _ in range(100):  # the writer thread flushes every second
        if CallbackLog.objects.count() == 31:
            break
        time.sleep(0.05)
    assert CallbackLog.objects.filter(status_code=200, connection=connection).count() == 30
    assert CallbackLog.objects.filter(status_code=401, connection=None).count() == 1
    # 31 answers within a couple of seconds: written as one to three multi-row INSERTs, not 31.
    assert 1 <= writer.batches - batches_before <= 3
