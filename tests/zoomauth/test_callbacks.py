"""The token callbacks Recall GETs, against the fake Zoom over real HTTP."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest
import requests
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from tests.conftest import WHSEC
from zoomauth.models import CallbackLog, ZoomConnection
from zoomauth.tasks import callback_logs_prune

# Committed rows: a refresh runs in a thread of its own (it outlives the callback's budget), on
# its own database connection, which sees only what was committed.
pytestmark = pytest.mark.django_db(transaction=True)

MEETING = "85012345678"


def path_of(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.path}?{parsed.query}"


def introspect(fake_zoom, kind: str, token: str, meeting_id: str = "", consume: bool = False) -> dict:
    return requests.post(
        fake_zoom.base_url + "/_control/introspect",
        json={"kind": kind, "token": token, "meeting_id": meeting_id, "consume": consume},
        timeout=5,
    ).json()


def assert_bare_token(response) -> str:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Cache-Control"] == "no-store"
    body = response.content.decode()
    assert body == body.strip() and not body.startswith(('"', "{"))
    return body


@pytest.fixture
def meeting(fake_zoom):
    fake_zoom.add_meeting(id=MEETING, host_id="zu_alice")
    return MEETING


# --- success bodies ---------------------------------------------------------------------------


def test_access_token_body_is_the_stored_token_byte_for_byte(anon, connection):
    response = anon.get(path_of(connection.access_token_callback_url))
    assert assert_bare_token(response) == ZoomConnection.objects.get(pk=connection.pk).access_token


def test_access_token_with_60s_left_is_refreshed_to_at_least_120s(anon, connection, fake_zoom):
    ZoomConnection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() + timedelta(seconds=60)
    )
    # Make Zoom agree: the stored token really has 60 s left.
    requests.post(
        fake_zoom.base_url + "/_control/expire-access-tokens", json={"user_id": "zu_alice", "seconds_left": 60}
    )
    token = assert_bare_token(anon.get(path_of(connection.access_token_callback_url)))
    info = introspect(fake_zoom, "access_token", token)
    assert info["valid"] and info["seconds_left"] >= 120
    assert fake_zoom.counters["refresh"] == 1


def test_access_token_falls_back_to_a_stored_token_with_enough_left_when_zoom_fails(anon, connection, fake_zoom):
    ZoomConnection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() + timedelta(seconds=200)
    )
    fake_zoom.configure(fail_next=50, fail_status=503)
    response = anon.get(path_of(connection.access_token_callback_url))
    assert assert_bare_token(response) == connection.access_token
    ZoomConnection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() + timedelta(seconds=100)
    )
    assert anon.get(path_of(connection.access_token_callback_url)).status_code == 502  # too close to expiry to serve


def test_zak_is_a_valid_bare_zak(anon, connection, fake_zoom):
    token = assert_bare_token(anon.get(path_of(connection.zak_url)))
    assert introspect(fake_zoom, "zak", token)["valid"] is True


def test_obf_is_minted_per_request_for_the_meeting(anon, connection, fake_zoom, meeting):
    url = path_of(connection.callback_url("obf", meeting_id=meeting))
    first, second = (assert_bare_token(anon.get(url)) for _ in range(2))
    assert first != second
    assert fake_zoom.counters["obf"] == 2
    fake_zoom.join(meeting, "zu_alice")
    assert introspect(fake_zoom, "obf", first, meeting)["valid"] is True


def test_join_token_comes_from_the_host_and_honours_bypass(anon, connection, fake_zoom, meeting):
    url = path_of(connection.callback_url("join-token", meeting_id=meeting, bypass_waiting_room="true"))
    token = assert_bare_token(anon.get(url))
    verdict = introspect(fake_zoom, "join_token", token, meeting, consume=True)
    assert verdict["valid"] is True and verdict["bypass"] is True
    assert introspect(fake_zoom, "join_token", token, meeting)["reason"] == "already used"
    assert assert_bare_token(anon.get(url)) != token  # never reused


# --- failures, each from a real cause ----------------------------------------------------------


@pytest.mark.parametrize("meeting_id", ["", "abc", "12", "1234567890123456"])
def test_missing_or_malformed_meeting_id_is_400(anon, connection, meeting_id):
    response = anon.get(path_of(connection.callback_url("obf", meeting_id=meeting_id)))
    assert response.status_code == 400
    assert response.content.startswith(b"meeting_id is missing")


def test_bad_secret_or_unknown_connection_is_401(anon, connection):
    good = path_of(connection.zak_url)
    assert anon.get(good.replace(connection.callback_secret, "wrong")).status_code == 401
    assert anon.get(good.replace(str(connection.public_id), "00000000-0000-0000-0000-000000000000")).status_code == 401
    response = anon.get("/recall/callbacks/zak/")
    assert response.status_code == 401 and response["Content-Type"] == "text/plain; charset=utf-8"


def test_unknown_meeting_is_404(anon, connection, fake_zoom):
    response = anon.get(path_of(connection.callback_url("join-token", meeting_id="99999999999")))
    assert response.status_code == 404
    assert response.content == b"Zoom says this meeting does not exist."


def test_revoked_connection_is_404(anon, connection):
    ZoomConnection.objects.filter(pk=connection.pk).update(status=ZoomConnection.Status.REVOKED)
    assert anon.get(path_of(connection.zak_url)).status_code == 404


def test_connection_needing_reconnect_is_410(anon, connection, fake_zoom):
    fake_zoom.grants[("fake-client-id", "zu_alice")] += 1  # user removed the app in Zoom
    ZoomConnection.objects.filter(pk=connection.pk).update(access_token_expires_at=timezone.now())
    response = anon.get(path_of(connection.access_token_callback_url))
    assert response.status_code == 410
    assert anon.get(path_of(connection.zak_url)).status_code == 410


def test_not_the_host_is_409(anon, connection, fake_zoom):
    fake_zoom.add_meeting(id="86000000001", host_id="zu_bob")
    response = anon.get(path_of(connection.callback_url("join-token", meeting_id="86000000001")))
    assert response.status_code == 409
    assert b"Only the meeting host" in response.content


def test_zoom_5xx_is_502_with_retry_after(anon, connection, fake_zoom):
    fake_zoom.configure(fail_next=50, fail_status=500)
    response = anon.get(path_of(connection.zak_url))
    assert response.status_code == 502
    assert response["Retry-After"] == "5"
    assert not response.content.startswith(b"zak.")


def test_zoom_429_beyond_the_budget_is_503_with_retry_after(anon, connection, fake_zoom):
    fake_zoom.configure(rate_limit_per_second=1, rate_window_seconds=60, retry_after="30")
    assert anon.get(path_of(connection.zak_url)).status_code == 200
    started = time.monotonic()
    response = anon.get(path_of(connection.callback_url("obf", meeting_id="85000000000")))
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 30
    assert time.monotonic() - started < 5


def test_zoom_429_within_the_budget_is_retried(anon, connection, fake_zoom, meeting):
    fake_zoom.configure(rate_limit_per_second=1, rate_window_seconds=2, retry_after="2")
    assert anon.get(path_of(connection.zak_url)).status_code == 200
    started = time.monotonic()
    token = assert_bare_token(anon.get(path_of(connection.callback_url("obf", meeting_id=meeting))))
    assert token.startswith("obf.") and time.monotonic() - started < 5
    assert fake_zoom.counters["rate_limited"] >= 1


def test_zoom_hanging_still_answers_within_five_seconds(anon, connection, fake_zoom, meeting):
    fake_zoom.configure(hang_next=3, hang_seconds=6.0)
    started = time.monotonic()
    response = anon.get(path_of(connection.callback_url("obf", meeting_id=meeting)))
    assert time.monotonic() - started < 5
    assert response.status_code in (502, 503)


# --- Recall's request signing ------------------------------------------------------------------


def signed_headers(msg_id: str = "msg_1", ts: datetime | None = None, prefix: str = "webhook") -> dict:
    ts = ts or datetime.now(UTC)
    signature = Webhook(WHSEC).sign(msg_id, ts, "")
    return {
        f"HTTP_{prefix.upper()}_ID": msg_id,
        f"HTTP_{prefix.upper()}_TIMESTAMP": str(int(ts.timestamp())),
        f"HTTP_{prefix.upper()}_SIGNATURE": signature,
    }


@pytest.fixture
def signing_on(settings):
    settings.RECALL_VERIFICATION_SECRET = WHSEC
    return settings


def test_signature_made_by_the_standardwebhooks_library_is_accepted(anon, connection, signing_on):
    response = anon.get(path_of(connection.zak_url), **signed_headers())
    assert response.status_code == 200
    assert CallbackLog.objects.get().signature_checked is True


def test_legacy_svix_headers_and_several_signatures_are_accepted(anon, connection, signing_on):
    headers = signed_headers(prefix="svix")
    headers["HTTP_SVIX_SIGNATURE"] = "v1,bm9wZQ== " + headers["HTTP_SVIX_SIGNATURE"]
    assert anon.get(path_of(connection.zak_url), **headers).status_code == 200


def test_bad_or_stale_signature_is_401(anon, connection, signing_on):
    headers = signed_headers()
    headers["HTTP_WEBHOOK_SIGNATURE"] = "v1,bm9wZQ=="
    assert anon.get(path_of(connection.zak_url), **headers).status_code == 401
    stale = signed_headers(ts=datetime.now(UTC) - timedelta(minutes=6))
    response = anon.get(path_of(connection.zak_url), **stale)
    assert response.status_code == 401 and b"5 minutes" in response.content


def test_unsigned_requests_follow_the_setting(anon, connection, signing_on):
    assert anon.get(path_of(connection.zak_url)).status_code == 200
    signing_on.RECALL_ACCEPT_UNSIGNED_CALLBACKS = False
    response = anon.get(path_of(connection.zak_url))
    assert response.status_code == 401 and b"Unsigned" in response.content


# --- throttling, audit, load ---------------------------------------------------------------------


@pytest.mark.usefixtures("one_window")
def test_guessing_secrets_is_throttled(anon, connection, settings):
    bad = path_of(connection.zak_url).replace(connection.callback_secret, "guess")
    statuses = [anon.get(bad).status_code for _ in range(22)]
    assert statuses[:20] == [401] * 20
    assert statuses[-1] == 429
    response = anon.get(path_of(connection.zak_url))  # the right secret from that address waits too
    assert response.status_code == 429 and response["Retry-After"]


@pytest.mark.usefixtures("one_window")
def test_behind_a_proxy_each_client_address_is_throttled_on_its_own(anon, connection, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    bad = path_of(connection.zak_url).replace(connection.callback_secret, "guess")
    for _ in range(21):
        anon.get(bad, HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert anon.get(path_of(connection.zak_url), HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 429
    assert anon.get(path_of(connection.zak_url), HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 200
    assert CallbackLog.objects.filter(status_code=200).get().client_address == "198.51.100.7"


def test_every_callback_is_audited_without_the_token(anon, connection, meeting):
    token = assert_bare_token(anon.get(path_of(connection.callback_url("obf", meeting_id=meeting))))
    anon.get(path_of(connection.zak_url).replace(connection.callback_secret, "bad"))
    ok, bad = CallbackLog.objects.order_by("created_at")
    assert (ok.kind, ok.meeting_id, ok.status_code, ok.connection_id) == ("obf", meeting, 200, connection.pk)
    assert ok.zoom_calls == 1 and ok.client_address == "127.0.0.1"
    assert bad.status_code == 401 and bad.connection is None
    assert token not in ok.outcome and connection.callback_secret not in bad.outcome


def test_old_audit_records_are_pruned(anon, connection, settings):
    anon.get(path_of(connection.zak_url))
    CallbackLog.objects.update(created_at=timezone.now() - settings.CALLBACK_LOG_RETENTION - timedelta(days=1))
    anon.get(path_of(connection.zak_url))
    assert callback_logs_prune.run() == 1
    assert CallbackLog.objects.count() == 1


def test_rotating_the_secret_stops_old_urls_at_once(anon, connection):
    old = path_of(connection.zak_url)
    connection.rotate_callback_secret()
    connection.save()
    assert anon.get(old).status_code == 401
    assert anon.get(path_of(connection.zak_url)).status_code == 200


def test_two_hundred_concurrent_zak_callbacks_share_zoom_calls(connection, fake_zoom, live_server, settings):
    url = live_server.url + path_of(connection.zak_url)
    fake_zoom.configure(latency=0.0)
    fake_zoom.latency = 0.2  # a realistic Zoom round trip widens the window

    def fetch(_):
        return requests.get(url, timeout=10)

    with ThreadPoolExecutor(max_workers=20) as pool:  # 20 at a time stays under PostgreSQL's 100 connections
        responses = list(pool.map(fetch, range(200)))
    assert [r.status_code for r in responses] == [200] * 200
    tokens = {r.text for r in responses}
    assert all(introspect(fake_zoom, "zak", t)["valid"] for t in tokens)
    assert fake_zoom.counters["zak"] <= 5, fake_zoom.counters
