"""Throttles that cannot lock out Recall's fleet, and a Redis that degrades instead of failing."""

import socket

import pytest
from django.test import override_settings

from brokerproject import redis_client
from tests.recallbots.test_bot_api import MEETING_URL
from tests.zoomauth.test_callbacks import assert_bare_token, path_of, signed_headers
from tests.zoomauth.test_tokens import meeting  # noqa: F401 - fixture
from zoomauth.models import ZoomConnection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def signing_on(settings):
    from tests.conftest import WHSEC

    settings.RECALL_VERIFICATION_SECRET = WHSEC
    return settings


def with_rates(settings, **rates):
    throttle_rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": throttle_rates}


# --- throttles -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("one_window")
def test_signed_callbacks_with_the_right_secret_are_never_refused_by_the_address_limit(anon, connection, signing_on):
    with_rates(signing_on, callback_address="20/min")
    url = path_of(connection.access_token_callback_url)
    statuses = [anon.get(url, **signed_headers(msg_id=f"msg_{n}")).status_code for n in range(60)]
    assert statuses == [200] * 60  # three times the address limit, all from one address
    unsigned = [anon.get(url).status_code for _ in range(25)]
    assert unsigned[-1] == 429  # unsigned traffic from that address is counted per address


@pytest.mark.usefixtures("one_window")
def test_a_few_stale_urls_lock_out_only_themselves(anon, connection, signing_on, client, user, fake_zoom):
    from tests.conftest import connect_via_fake_zoom

    client.force_login(user)
    assert connect_via_fake_zoom(client, fake_zoom, zoom_user_id="zu_bob").status_code == 200
    bob = ZoomConnection.objects.get(zoom_user_id="zu_bob")
    client.logout()
    stale = path_of(connection.access_token_callback_url).replace(connection.callback_secret, "rotated-away")
    statuses = [anon.get(stale, **signed_headers(msg_id=f"m{n}")).status_code for n in range(22)]
    assert statuses[:20] == [401] * 20 and statuses[-1] == 429  # this URL, from this address: locked out
    # Every other bot behind the same address goes on.
    assert anon.get(path_of(bob.access_token_callback_url), **signed_headers(msg_id="b1")).status_code == 200
    assert anon.get(path_of(bob.zak_url), **signed_headers(msg_id="b2")).status_code == 200


# --- Redis away ----------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture
def redis_away(settings):
    """REDIS_URL points where nothing answers: what every process sees while redis-server is down."""
    url = f"redis://127.0.0.1:{closed_port()}/0"
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    with override_settings(REDIS_URL=url, CACHES=caches):
        _forget_process_state()
        yield
    _forget_process_state()


def _forget_process_state() -> None:
    from brokerproject import throttling
    from zoomauth import singleflight

    redis_client.forget_clients()
    redis_client._down_until = 0.0
    throttling._process_counts.counters.clear()
    singleflight._local.values.clear()
    singleflight._local.errors.clear()


def test_access_token_callbacks_are_served_from_the_database(anon, connection, redis_away):
    url = path_of(connection.access_token_callback_url)
    tokens = {assert_bare_token(anon.get(url)) for _ in range(30)}
    assert tokens == {connection.access_token}


@pytest.mark.usefixtures("one_window")
def test_guessing_is_still_throttled_per_process(anon, connection, redis_away):
    bad = path_of(connection.zak_url).replace(connection.callback_secret, "guess")
    statuses = [anon.get(bad).status_code for _ in range(22)]
    assert statuses[:20] == [401] * 20 and statuses[-1] == 429


def test_zak_and_obf_are_minted_without_the_shared_single_flight(anon, connection, fake_zoom, meeting, redis_away):  # noqa: F811, E501
    assert_bare_token(anon.get(path_of(connection.zak_url)))
    assert_bare_token(anon.get(path_of(connection.zak_url)))
    assert fake_zoom.counters["zak"] == 1  # shared within the process
    assert_bare_token(anon.get(path_of(connection.callback_url("obf", meeting_id=meeting))))


def test_an_idempotency_key_is_503_with_retry_after(api_client, connection, staff, redis_away):
    from accounts.models import ApiToken

    _, raw = ApiToken.issue(user=staff, name="backend")
    response = api_client.post(
        "/api/bots/",
        {"meeting_url": MEETING_URL, "connection": str(connection.public_id), "token_kinds": ["zak"]},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
        HTTP_IDEMPOTENCY_KEY="launch-1",
    )
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "Idempotency-Key" in response.json()["detail"]


def test_readyz_says_redis_is_down(client, redis_away):
    body = client.get("/readyz").json()
    assert body["checks"]["redis"]["ok"] is False


# --- cost ----------------------------------------------------------------------------------------


@pytest.fixture
def redis_round_trips(monkeypatch):
    """Every write to a Redis socket (a command, or a whole pipeline) is one round trip."""
    import redis.connection

    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    return sent


@pytest.mark.parametrize(("signed", "round_trips"), [(False, 2), (True, 1)])
def test_a_stored_token_callback_costs_one_redis_round_trip_signed_two_unsigned(
    anon, connection, signing_on, redis_round_trips, signed, round_trips
):
    url = path_of(connection.access_token_callback_url)
    headers = signed_headers(msg_id="rt") if signed else {}
    anon.get(url, **headers)  # connections opened, scripts loaded
    redis_round_trips.clear()
    assert_bare_token(anon.get(url, **signed_headers(msg_id="rt2") if signed else {}))
    # Signed: lockout and connection counted together. Unsigned: the address and its lockouts
    # before the row is read (a locked-out caller costs no database read), then the connection.
    assert len(redis_round_trips) == round_trips


@pytest.mark.usefixtures("one_window")
def test_a_failed_secret_costs_two_redis_round_trips_and_still_counts(anon, connection, redis_round_trips):
    bad = path_of(connection.access_token_callback_url).replace(connection.callback_secret, "guess")
    anon.get(bad)
    redis_round_trips.clear()
    assert anon.get(bad).status_code == 401
    assert len(redis_round_trips) == 2  # checked before the row read, counted after it
    statuses = [anon.get(bad).status_code for _ in range(20)]
    assert statuses[-1] == 429
    redis_round_trips.clear()
    assert anon.get(bad).status_code == 429
    assert len(redis_round_trips) == 1  # locked out: refused before the row read
