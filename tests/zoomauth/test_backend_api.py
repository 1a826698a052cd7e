"""The customer's backend drives the broker: connect links for its own users and the connections
API, with the fake Zoom behind the real connect flow."""

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken, User
from tests.conftest import connect_via_fake_zoom
from zoomauth.models import ConnectSession, ZoomConnection

RETURN = "https://app.customer.example/zoom/done"


@pytest.fixture
def backend(staff, settings):
    settings.CONNECT_RETURN_URL_HOSTS = ["app.customer.example"]
    _, raw = ApiToken.issue(user=staff, name="customer backend")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def path_of(url: str) -> str:
    parsed = urlparse(url)
    return parsed.path + (f"?{parsed.query}" if parsed.query else "")


def new_link(api_client, backend, **body) -> dict:
    response = api_client.post(
        "/api/connect-sessions/", {"external_user_id": "cust-42", **body}, format="json", **backend
    )
    assert response.status_code == 201, response.content
    return response.json()


def consent_through_zoom(browser: Client, fake_zoom, link_url: str, zoom_user_id: str = "zu_alice"):
    """The end user's browser: the link, Zoom's consent page, back to the broker."""
    return connect_via_fake_zoom(browser, fake_zoom, zoom_user_id, start=path_of(link_url))


def test_an_end_user_connects_through_a_link_without_a_broker_account(api_client, backend, zoom_app, fake_zoom):
    link = new_link(api_client, backend, email="alice@customer.example", return_url=RETURN)
    assert link["external_user_id"] == "cust-42" and link["url"].startswith("https://broker.example.test/")
    finished = consent_through_zoom(Client(), fake_zoom, link["url"])
    assert finished.status_code == 302
    back = urlparse(finished["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == RETURN
    result = parse_qs(back.query)
    assert result["status"] == ["connected"]
    end_user = User.objects.get(external_user_id="cust-42")
    assert not end_user.has_usable_password() and end_user.email == "alice@customer.example"
    connection = ZoomConnection.objects.get(user=end_user)
    assert result["connection"] == [str(connection.public_id)]

    listed = api_client.get("/api/connections/?external_user_id=cust-42&status=active", **backend).json()
    assert [c["id"] for c in listed] == [str(connection.public_id)]
    body = listed[0]
    assert (body["zoom_user_id"], body["zoom_email"], body["app"]) == (
        "zu_alice",
        "alice@zoom.example",
        str(zoom_app.public_id),
    )
    assert body["callback_urls"]["zak"] == connection.zak_url
    assert body["callback_urls"]["obf"].endswith(f"auth_token={connection.callback_secret}")
    assert api_client.get("/api/connections/?status=revoked", **backend).json() == []


def test_a_link_is_single_use_and_expires(api_client, backend, zoom_app, fake_zoom):
    link = new_link(api_client, backend)
    browser = Client()
    assert browser.get(path_of(link["url"])).status_code == 200  # a link previewer's GET...
    assert browser.get(path_of(link["url"])).status_code == 200  # ...uses nothing up
    assert browser.post(path_of(link["url"])).status_code == 302  # the user's click does
    used = browser.post(path_of(link["url"]))
    assert used.status_code == 410 and b"already used" in used.content
    assert browser.get(path_of(link["url"])).status_code == 410
    expired = new_link(api_client, backend)
    ConnectSession.objects.filter(used_at__isnull=True).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = Client().get(path_of(expired["url"]))
    assert response.status_code == 410 and b"expired" in response.content
    assert Client().get("/zoom/connect/s/not-a-real-token/").status_code == 404


def test_reconnecting_an_end_user_keeps_the_connection_id(api_client, backend, zoom_app, fake_zoom):
    consent_through_zoom(Client(), fake_zoom, new_link(api_client, backend)["url"])
    first = ZoomConnection.objects.get()
    consent_through_zoom(Client(), fake_zoom, new_link(api_client, backend)["url"])
    again = ZoomConnection.objects.get()
    assert again.public_id == first.public_id and again.access_token != first.access_token


def test_declining_in_zoom_goes_back_with_the_reason(api_client, backend, zoom_app, fake_zoom):
    link = new_link(api_client, backend, return_url=RETURN + "?from=settings")
    browser = Client()
    to_zoom = browser.post(path_of(link["url"]))
    state = parse_qs(urlparse(to_zoom["Location"]).query)["state"][0]
    back = browser.get(f"/zoom/callback/?error=access_denied&state={state}")
    assert back.status_code == 302
    assert parse_qs(urlparse(back["Location"]).query) == {
        "from": ["settings"],
        "status": ["error"],
        "reason": ["access_denied"],
    }
    assert not ZoomConnection.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"return_url": "https://evil.example/steal"}, "return_url"),
        ({"app": str(uuid.uuid4())}, "app"),
        ({"external_user_id": "x" * 256}, "external_user_id"),
        ({"external_user_id": ["not", "a", "string"]}, "external_user_id"),
    ],
)
def test_bad_connect_session_requests_are_400_with_field_errors(api_client, backend, zoom_app, body, field):
    response = api_client.post(
        "/api/connect-sessions/", {"external_user_id": "cust-42", **body}, format="json", **backend
    )
    assert response.status_code == 400
    assert field in response.json()
    assert not ConnectSession.objects.exists()


def test_only_staff_tokens_make_links_and_users_see_their_own_connections(api_client, backend, user, connection):
    _, raw = ApiToken.issue(user=user, name="not staff")
    own = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert api_client.post("/api/connect-sessions/", {"external_user_id": "x"}, format="json", **own).status_code == 403
    assert [c["id"] for c in api_client.get("/api/connections/", **own).json()] == [str(connection.public_id)]
    other = User.objects.create_user(username="bob", password="correct horse battery")
    _, other_raw = ApiToken.issue(user=other, name="bob")
    foreign = api_client.get(f"/api/connections/{connection.public_id}/", HTTP_AUTHORIZATION=f"Bearer {other_raw}")
    assert foreign.status_code == 404
    assert api_client.get(f"/api/connections/{uuid.uuid4()}/", **backend).status_code == 404
    assert api_client.get(f"/api/connections/{connection.public_id}/", **backend).status_code == 200


def test_delete_wipes_the_tokens_at_once_and_revokes_at_zoom_in_a_task(
    api_client, backend, connection, fake_zoom, django_capture_on_commit_callbacks
):
    from tests.conftest import run_queued_tasks

    fake_zoom.latency = 2.0  # a slow Zoom does not hold the DELETE
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.delete(f"/api/connections/{connection.public_id}/", **backend)
    assert response.status_code == 204
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.status == ZoomConnection.Status.REVOKED and stored.access_token == "" and stored.refresh_token == ""
    assert fake_zoom.counters["revoke"] == 0  # not called while the API answered
    fake_zoom.latency = 0.0
    assert run_queued_tasks("refresh") == 1  # the revoke task, on the Zoom-facing queue
    assert fake_zoom.counters["revoke"] == 1
    body = api_client.get(f"/api/connections/{connection.public_id}/", **backend).json()
    assert body["status"] == "revoked" and body["callback_urls"] is None


def test_rotate_secret_gives_new_urls_and_the_old_ones_stop(api_client, backend, connection, live_server):
    old = connection.zak_url
    response = api_client.post(f"/api/connections/{connection.public_id}/rotate-secret/", **backend)
    assert response.status_code == 200
    new = response.json()["callback_urls"]["zak"]
    assert new != old
    assert requests.get(live_server.url + path_of(old), timeout=5).status_code == 401


def test_the_api_is_documented(api_client, backend):
    schema = api_client.get("/api/schema/", **backend)
    assert schema.status_code == 200
    for path in ("/api/connect-sessions/", "/api/connections/", "/api/connections/{connection_id}/rotate-secret/"):
        assert path.encode() in schema.content
    assert b"meeting_id" in schema.content  # how to complete the OBF and join-token URLs
    docs = api_client.get("/api/docs/", **backend)
    assert docs.status_code == 200 and b"/api/schema/" in docs.content
