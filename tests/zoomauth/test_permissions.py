"""Staff powers over other users' connections are Django permissions; every reveal is recorded."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission

from accounts.models import ApiToken, User
from zoomauth.models import ZoomConnection

pytestmark = pytest.mark.django_db(transaction=True)


def staff_with(*perms: str) -> dict:
    person = User.objects.create_user(username="ops", password="correct horse battery", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        person.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    _, raw = ApiToken.issue(user=person, name="ops")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_staff_without_permissions_is_refused(api_client, client, connection):
    auth = staff_with()
    assert api_client.get("/api/connections/", **auth).status_code == 403
    assert api_client.get(f"/api/connections/{connection.public_id}/", **auth).status_code == 403
    assert api_client.delete(f"/api/connections/{connection.public_id}/", **auth).status_code == 403
    assert api_client.post(f"/api/connections/{connection.public_id}/rotate-secret/", **auth).status_code == 403
    made = api_client.post("/api/connect-sessions/", {"external_user_id": "x"}, format="json", **auth)
    assert made.status_code == 403
    # A signed-in staff session is no different from its token.
    client.force_login(User.objects.get(username="ops"))
    response = client.get("/api/connections/")
    assert response.status_code == 403 and connection.callback_secret.encode() not in response.content
    assert ZoomConnection.objects.get(pk=connection.pk).status == ZoomConnection.Status.ACTIVE


def test_view_permission_shows_masked_urls_and_records_nothing(api_client, connection):
    auth = staff_with("zoomauth.view_zoomconnection")
    response = api_client.get("/api/connections/", **auth)
    assert response.status_code == 200
    (body,) = response.json()
    assert connection.callback_secret not in response.content.decode()
    assert "auth_token=%2A%2A%2A%2A%2A%2A%2A%2A" in body["callback_urls"]["zak"]  # masked
    assert not LogEntry.objects.exists()
    # Viewing is not acting: no delete, no rotate, no changing the owner's choices.
    assert api_client.delete(f"/api/connections/{connection.public_id}/", **auth).status_code == 403
    assert api_client.post(f"/api/connections/{connection.public_id}/rotate-secret/", **auth).status_code == 403
    patch = {"allow_join_tokens_for_others": True}
    assert (
        api_client.patch(f"/api/connections/{connection.public_id}/", patch, format="json", **auth).status_code == 403
    )


def test_reveal_permission_shows_the_urls_and_records_who_and_when(api_client, connection):
    auth = staff_with("zoomauth.view_zoomconnection", "zoomauth.reveal_callback_urls")
    response = api_client.get(f"/api/connections/{connection.public_id}/", **auth)
    assert response.status_code == 200
    assert response.json()["callback_urls"]["zak"] == connection.zak_url
    entry = LogEntry.objects.get()
    assert entry.user.username == "ops" and entry.object_id == str(connection.pk)
    assert "through the API" in entry.change_message and entry.action_time


def test_the_owner_sees_and_sets_their_own_connection(api_client, connection):
    _, raw = ApiToken.issue(user=connection.user, name="mine")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    (body,) = api_client.get("/api/connections/", **auth).json()
    assert body["callback_urls"]["zak"] == connection.zak_url and body["allow_join_tokens_for_others"] is False
    assert not LogEntry.objects.exists()  # their own URLs: nothing to record
    changed = api_client.patch(
        f"/api/connections/{connection.public_id}/", {"allow_join_tokens_for_others": True}, format="json", **auth
    )
    assert changed.status_code == 200 and changed.json()["allow_join_tokens_for_others"] is True
    assert ZoomConnection.objects.get(pk=connection.pk).allow_join_tokens_for_others


def test_launching_on_another_users_connection_needs_the_permission(api_client, connection, fake_recall):
    body = {
        "meeting_url": "https://zoom.us/j/85012345678",
        "connection": str(connection.public_id),
        "token_kinds": ["zak"],
    }
    refused = api_client.post("/api/bots/", body, format="json", **staff_with("recallbots.add_bot"))
    assert refused.status_code == 400 and "belongs to you" in str(refused.json())
