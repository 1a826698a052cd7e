"""Connect links and connections that cannot be hijacked, and secrets that never ride in a cookie.
Each test makes the attacker's request."""

import pytest
from django.test import Client

from accounts.models import User
from tests.conftest import connect_via_fake_zoom
from tests.zoomauth.test_backend_api import RETURN, backend, new_link, path_of  # noqa: F401 - fixture
from webhooks.models import Event, EventEndpoint
from zoomauth.models import ConnectSession, ZoomConnection

pytestmark = pytest.mark.django_db(transaction=True)

BROWSER_TRICKS = [
    "https://evil.example\\@app.customer.example/",
    "https://evil.example%5C@app.customer.example/",
    "https://evil.example%5c@app.customer.example/",
    "https://user:pw@app.customer.example/",
    "https://user@app.customer.example/",
    "http://app.customer.example/zoom/done",
    "https://app.customer.example@evil.example/",
    "https://app.customer.example:443@evil.example/",
    "https://evil.example#@app.customer.example/",
    "https://evil.example?@app.customer.example/",
    "//app.customer.example/",
    "https:/\\app.customer.example/",
    "https:app.customer.example/",
    "https:\\\\evil.example\\@app.customer.example/",
    "https://app.customer.example/\\evil.example",
    "https://app.customer.example\t.evil.example/",
    "https://app.customer.example\n/",
    "https://evil.example\x00@app.customer.example/",
    "https://app.customer.example%2F@evil.example/",
    "https://app.customer.example.evil.example/",
    "javascript:alert(1)//app.customer.example",
    "data:text/html,<script>alert(1)</script>",
]


@pytest.mark.parametrize("trick", BROWSER_TRICKS)
def test_return_url_tricks_browsers_read_differently_are_refused(api_client, backend, zoom_app, trick):  # noqa: F811
    response = api_client.post(
        "/api/connect-sessions/", {"external_user_id": "cust-42", "return_url": trick}, format="json", **backend
    )
    assert response.status_code == 400, trick
    assert "return_url" in response.json() or "NUL" in response.json()["detail"]  # the body parser's, for NUL
    assert not ConnectSession.objects.exists()


def test_a_plain_allowed_return_url_is_taken(api_client, backend, zoom_app):  # noqa: F811
    link = new_link(api_client, backend, return_url=RETURN + "?next=%2Fsettings&x=1")
    assert link["url"]


def test_a_link_a_previewer_fetched_still_works_for_the_user(api_client, backend, zoom_app, fake_zoom):  # noqa: F811
    link = new_link(api_client, backend, return_url=RETURN)
    previewer = Client()
    page = previewer.get(path_of(link["url"]))
    assert page.status_code == 200 and b"Continue to Zoom" in page.content and page["Cache-Control"] == "no-store"
    finished = connect_via_fake_zoom(Client(), fake_zoom, "zu_alice", start=path_of(link["url"]))
    assert finished.status_code == 302 and "status=connected" in finished["Location"]


def test_a_consent_by_another_user_does_not_move_the_connection(connection, client, fake_zoom):
    """Mallory gets alice's Zoom user to consent through mallory's own sign-in (a forwarded or
    phished link): refused, the connection stays alice's with its URLs, and alice hears of it."""
    EventEndpoint.objects.create(url="https://customer.example/hooks", secret=EventEndpoint.new_secret())
    mallory = User.objects.create_user(username="mallory", password="correct horse battery")
    before = ZoomConnection.objects.get(pk=connection.pk)
    client.force_login(mallory)
    refused = connect_via_fake_zoom(client, fake_zoom, "zu_alice")
    assert refused.status_code == 409
    assert b"already connected for another user" in refused.content
    after = ZoomConnection.objects.get(pk=connection.pk)
    assert after.user_id == connection.user_id and after.status == ZoomConnection.Status.ACTIVE
    assert after.callback_secret_hash == before.callback_secret_hash  # alice's URLs go on
    event = Event.objects.get(type=Event.Type.CONNECTION_CLAIM_REFUSED)
    assert event.connection_id == connection.pk


def test_a_new_api_key_is_shown_once_without_a_cookie(client, staff):
    client.force_login(staff)
    response = client.post("/admin/accounts/apitoken/add/", {"user": staff.pk, "name": "backend"}, follow=True)
    assert b"shown once" in response.content
    assert "messages" not in response.cookies and "messages" not in client.cookies
