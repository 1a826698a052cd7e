"""Every field of the JSON API at ten times its column's length: a 400 naming the field, never a
500, nothing stored. (The route fuzz test walks the routes; this walks the bodies.)"""

import pytest

from accounts.models import ApiToken
from recallbots.models import Bot
from zoomauth.models import ConnectSession

pytestmark = pytest.mark.django_db(transaction=True)

BOT = {"meeting_url": "https://zoom.us/j/85012345678", "external_user_id": "cust-7", "token_kinds": ["zak"]}


@pytest.fixture
def backend(staff):
    _, raw = ApiToken.issue(user=staff, name="backend")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"meeting_url": "https://zoom.us/j/85012345678?pwd=" + "p" * 1000}, "meeting_url"),  # passcode column 100
        ({"meeting_url": "https://zoom.us/j/85012345678?x=" + "u" * 20_000}, "meeting_url"),
        ({"bot_name": "b" * 1000}, "bot_name"),
        ({"external_user_id": "e" * 2550}, "external_user_id"),
        ({"metadata": {"k": "v" * 5000}}, "metadata"),
        ({"connection": "c" * 400}, "connection"),
        ({"token_kinds": ["zak" * 100]}, "token_kinds"),
    ],
)
def test_bot_fields_at_ten_times_their_length(api_client, backend, connection, fake_recall, change, field):
    connection.user.external_user_id = "cust-7"
    connection.user.save(update_fields=["external_user_id"])
    response = api_client.post("/api/bots/", {**BOT, **change}, format="json", **backend)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Bot.objects.exists()


def test_an_idempotency_key_at_ten_times_its_length(api_client, backend, connection):
    response = api_client.post("/api/bots/", BOT, format="json", HTTP_IDEMPOTENCY_KEY="k" * 2550, **backend)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"external_user_id": "e" * 2550}, "external_user_id"),
        ({"email": "a" * 2540 + "@example.com"}, "email"),
        ({"return_url": "https://app.example.com/" + "r" * 20_000}, "return_url"),
        ({"app": "a" * 400}, "app"),
    ],
)
def test_connect_session_fields_at_ten_times_their_length(api_client, backend, zoom_app, change, field):
    response = api_client.post(
        "/api/connect-sessions/", {"external_user_id": "cust-1", **change}, format="json", **backend
    )
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not ConnectSession.objects.exists()
