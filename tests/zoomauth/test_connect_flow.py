"""The connect flow over real HTTP against the fake Zoom, success and every failure page."""

from urllib.parse import parse_qs, urlparse

import pytest
import requests

from tests.conftest import connect_via_fake_zoom
from zoomauth.models import ZoomConnection
from zoomauth.services import SESSION_KEY


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def test_connect_stores_encrypted_tokens_and_profile(signed_in, zoom_app, fake_zoom):
    response = connect_via_fake_zoom(signed_in, fake_zoom)
    assert response.status_code == 200
    assert b"Zoom connected" in response.content
    connection = ZoomConnection.objects.get()
    assert (connection.zoom_user_id, connection.email, connection.pmi) == (
        "zu_alice",
        "alice@zoom.example",
        "5551234567",
    )
    assert connection.access_token.startswith("eyJ.fake-access.")
    assert connection.status == ZoomConnection.Status.ACTIVE
    assert connection.access_token not in response.content.decode()
    assert fake_zoom.counters["token_exchange"] == 1


def test_authorize_url_carries_state_and_pkce(signed_in, zoom_app):
    response = signed_in.get("/zoom/connect/")
    query = parse_qs(urlparse(response["Location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["state"][0]) >= 32
    assert query["redirect_uri"] == [zoom_app.redirect_uri]


def test_real_consent_page_and_redirect(signed_in, zoom_app, fake_zoom):
    location = signed_in.get("/zoom/connect/")["Location"]
    page = requests.get(location, timeout=5)
    assert page.status_code == 200 and "alice@zoom.example" in page.text
    query = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
    decided = requests.post(
        fake_zoom.base_url + "/oauth/authorize", data={**query, "user_id": "zu_bob"}, allow_redirects=False, timeout=5
    )
    callback = urlparse(decided.headers["Location"])
    assert signed_in.get(callback.path + "?" + callback.query).status_code == 200
    assert ZoomConnection.objects.get().zoom_user_id == "zu_bob"


def test_user_declining_gets_a_friendly_400(signed_in, zoom_app):
    state = parse_qs(urlparse(signed_in.get("/zoom/connect/")["Location"]).query)["state"][0]
    response = signed_in.get(f"/zoom/callback/?error=access_denied&state={state}")
    assert response.status_code == 400
    assert b"did not allow access" in response.content and b"/zoom/connect/" in response.content


def test_missing_or_unknown_state_is_refused(signed_in, zoom_app):
    assert signed_in.get("/zoom/callback/?code=abc").status_code == 400
    response = signed_in.get("/zoom/callback/?code=abc&state=forged")
    assert response.status_code == 400
    assert b"unknown or was already used" in response.content


def test_state_is_single_use(signed_in, zoom_app, fake_zoom):
    connect_via_fake_zoom(signed_in, fake_zoom)
    location = signed_in.get("/zoom/connect/")["Location"]
    state = parse_qs(urlparse(location).query)["state"][0]
    signed_in.get(f"/zoom/callback/?code=x&state={state}")
    assert signed_in.get(f"/zoom/callback/?code=x&state={state}").status_code == 400


def test_expired_state_is_refused(signed_in, zoom_app):
    location = signed_in.get("/zoom/connect/")["Location"]
    state = parse_qs(urlparse(location).query)["state"][0]
    session = signed_in.session
    session[SESSION_KEY][state]["created_at"] -= 3600
    session.save()
    response = signed_in.get(f"/zoom/callback/?code=abc&state={state}")
    assert response.status_code == 400 and b"expired" in response.content


def test_reused_code_gets_invalid_grant_page(signed_in, zoom_app, fake_zoom):
    location = signed_in.get("/zoom/connect/")["Location"]
    query = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
    code = parse_qs(
        urlparse(
            fake_zoom.consent(
                client_id=query["client_id"],
                user_id="zu_alice",
                redirect_uri=query["redirect_uri"],
                state=query["state"],
                code_challenge=query["code_challenge"],
            )
        ).query
    )["code"][0]
    fake_zoom.codes[code]["used"] = True  # as if the code had been redeemed already
    response = signed_in.get(f"/zoom/callback/?code={code}&state={query['state']}")
    assert response.status_code == 400
    assert b"did not accept the authorization" in response.content
    assert code.encode() not in response.content


@pytest.mark.parametrize("fault", [{"fail_next": 1, "fail_status": 503}, {"hang_next": 1, "hang_seconds": 4.0}])
def test_zoom_down_or_slow_gets_a_503_page(signed_in, zoom_app, fake_zoom, settings, fault):
    settings.ZOOM_HTTP_TIMEOUT = 1.0
    fake_zoom.configure(**fault)
    response = connect_via_fake_zoom(signed_in, fake_zoom)
    assert response.status_code == 503
    assert b"not answering" in response.content
    assert not ZoomConnection.objects.exists()


def test_reconnect_replaces_tokens_of_the_same_connection(signed_in, zoom_app, fake_zoom):
    connect_via_fake_zoom(signed_in, fake_zoom)
    first = ZoomConnection.objects.get()
    ZoomConnection.objects.filter(pk=first.pk).update(status=ZoomConnection.Status.NEEDS_RECONNECT)
    connect_via_fake_zoom(signed_in, fake_zoom)
    again = ZoomConnection.objects.get()
    assert again.pk == first.pk
    assert again.access_token != first.access_token
    assert again.status == ZoomConnection.Status.ACTIVE
    assert again.token_generation == first.token_generation + 1
    assert again.callback_secret_hash == first.callback_secret_hash  # the owner's URLs go on


def test_the_owners_consent_on_an_active_connection_keeps_every_url(signed_in, connection, fake_zoom):
    from tests.zoomauth.test_callbacks import path_of

    urls = [path_of(connection.access_token_callback_url), path_of(connection.zak_url)]
    assert connect_via_fake_zoom(signed_in, fake_zoom).status_code == 200  # a second consent, same user
    signed_in.logout()
    assert [signed_in.get(url).status_code for url in urls] == [200, 200]


def test_disconnect_revokes_at_zoom_and_wipes_tokens(
    signed_in, connection, fake_zoom, django_capture_on_commit_callbacks
):
    from tests.conftest import run_queued_tasks

    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"/zoom/connections/{connection.public_id}/disconnect/")
    run_queued_tasks("refresh")
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.status == ZoomConnection.Status.REVOKED
    assert connection.access_token == "" and connection.refresh_token == ""
    assert fake_zoom.counters["revoke"] == 1


def test_home_page_shows_callback_urls_but_no_tokens(signed_in, connection):
    page = signed_in.get("/").content.decode()
    assert connection.callback_secret in page  # the user's own URLs
    assert connection.access_token not in page and connection.refresh_token not in page


@pytest.mark.parametrize("app_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_unknown_app_in_the_connect_link_is_a_404_page(signed_in, zoom_app, app_id):
    response = signed_in.get(f"/zoom/connect/?app={app_id}")
    assert response.status_code == 404
    assert b"That Zoom app does not exist." in response.content


def test_connect_without_an_app_chooses_none_one_or_asks_which(signed_in, db):
    from zoomauth.models import ZoomApp

    none = signed_in.get("/zoom/connect/")
    assert none.status_code == 404 and b"No Zoom app is set up yet" in none.content
    first = ZoomApp.objects.create(name="Notetaker", client_id="cid-1", client_secret="s", webhook_secret="w")
    one = signed_in.get("/zoom/connect/")
    assert one.status_code == 302 and "client_id=cid-1" in one["Location"]
    ZoomApp.objects.create(name="Archive", client_id="cid-2", client_secret="s", webhook_secret="w")
    two = signed_in.get("/zoom/connect/")
    assert two.status_code == 200 and b"Which Zoom app?" in two.content
    assert f"?app={first.public_id}".encode() in two.content
