import base64
from urllib.parse import parse_qs

import pytest
import responses

from brokerproject.http import parse_retry_after
from zoomauth import zoom

OAUTH = "https://zoom.test"
API = "https://api.zoom.test/v2"


@pytest.fixture(autouse=True)
def _base_urls(settings):
    settings.ZOOM_OAUTH_BASE_URL = OAUTH
    settings.ZOOM_API_BASE_URL = API


@responses.activate
def test_refresh_sends_form_body_with_basic_auth_and_parses_rotation():
    responses.post(
        f"{OAUTH}/oauth/token",
        json={"access_token": "AT2", "refresh_token": "RT2", "expires_in": 3599, "scope": "user:read:zak"},
    )
    tokens = zoom.refresh_tokens(client_id="cid", client_secret="sec", refresh_token="RT1")
    call = responses.calls[0].request
    assert call.url == f"{OAUTH}/oauth/token"  # nothing in the query string
    assert call.headers["Authorization"] == "Basic " + base64.b64encode(b"cid:sec").decode()
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(call.body) == {"grant_type": ["refresh_token"], "refresh_token": ["RT1"]}
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_in) == ("AT2", "RT2", 3599)
    assert "AT2" not in repr(tokens) and "RT2" not in repr(tokens)


@responses.activate
def test_exchange_sends_code_verifier_and_redirect_uri():
    responses.post(f"{OAUTH}/oauth/token", json={"access_token": "A", "refresh_token": "R", "expires_in": 3599})
    zoom.exchange_code(client_id="c", client_secret="s", code="CODE", redirect_uri="https://b/cb/", code_verifier="V")
    assert parse_qs(responses.calls[0].request.body) == {
        "grant_type": ["authorization_code"],
        "code": ["CODE"],
        "redirect_uri": ["https://b/cb/"],
        "code_verifier": ["V"],
    }


@responses.activate
def test_invalid_grant_is_permanent():
    responses.post(f"{OAUTH}/oauth/token", status=400, json={"reason": "Invalid Token!", "error": "invalid_grant"})
    with pytest.raises(zoom.ZoomInvalidGrantError) as caught:
        zoom.refresh_tokens(client_id="c", client_secret="s", refresh_token="dead")
    assert "dead" not in str(caught.value)


@responses.activate
@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), (None, None), ("Wed, 21 Oct 2099 07:28:00 GMT", "future")],
)
def test_429_is_retryable_with_retry_after_in_any_form(header, expected):
    headers = {"Retry-After": header} if header else {}
    responses.get(f"{API}/users/me/token", status=429, json={"code": 429, "message": "rate"}, headers=headers)
    with pytest.raises(zoom.ZoomRetryableError) as caught:
        zoom.get_zak(access_token="AT")
    if expected == "future":
        assert caught.value.retry_after > 3600
    else:
        assert caught.value.retry_after == expected


def test_retry_after_parses_http_dates_relative_to_now():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("garbage") is None


@responses.activate
def test_zak_obf_and_join_token_calls():
    responses.get(
        f"{API}/users/me/token", json={"token": "ZAK"}, match=[responses.matchers.query_param_matcher({"type": "zak"})]
    )
    responses.get(
        f"{API}/users/me/token",
        json={"token": "OBF"},
        match=[responses.matchers.query_param_matcher({"type": "onbehalf", "meeting_id": "123456789"})],
    )
    responses.get(
        f"{API}/meetings/123456789/jointoken/local_recording",
        json={"token": "JT", "expire_in": 120},
        match=[responses.matchers.query_param_matcher({"bypass_waiting_room": "true"})],
    )
    assert zoom.get_zak(access_token="AT").token == "ZAK"
    assert zoom.get_obf_token(access_token="AT", meeting_id="123456789").token == "OBF"
    joined = zoom.get_local_recording_join_token(access_token="AT", meeting_id="123456789", bypass_waiting_room=True)
    assert (joined.token, joined.expires_in) == ("JT", 120)
    assert all(call.request.headers["Authorization"] == "Bearer AT" for call in responses.calls)


@responses.activate
def test_meeting_not_found_and_5xx_and_timeouts_are_classified():
    responses.get(f"{API}/meetings/1/jointoken/local_recording", status=404, json={"code": 3001, "message": "no"})
    with pytest.raises(zoom.ZoomNotFoundError):
        zoom.get_local_recording_join_token(access_token="AT", meeting_id="1")
    responses.get(f"{API}/users/me", status=503, body="down")
    with pytest.raises(zoom.ZoomRetryableError):
        zoom.get_me(access_token="AT")
    import requests

    responses.get(f"{API}/users/me/token", body=requests.ReadTimeout())
    with pytest.raises(zoom.ZoomRetryableError, match="did not answer"):
        zoom.get_zak(access_token="AT")
