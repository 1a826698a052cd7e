"""OBF candidates: other connections whose OBF token may authorize a bot, each by its owner's
choice (`allow_obf_for_others`), set by the owner or relayed by the customer's backend."""

import pytest
from django.contrib.admin.models import LogEntry

from accounts.models import ApiToken, User
from recallbots.models import Bot
from tests.conftest import connect_via_fake_zoom
from tests.recallbots.test_bots import wait_for_status
from tests.recallbots.test_waiting import MEETING, worker_turn
from tests.recallbots.test_waiting import _live as _live  # noqa: F401 - the same live broker and queues
from tests.recallbots.test_waiting import meeting as meeting  # noqa: F401
from tests.zoomauth.test_permissions import staff_with
from zoomauth.models import CallbackLog, ZoomConnection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bob(zoom_app, client, fake_zoom):
    person = User.objects.create_user(username="bob", password="correct horse battery", external_user_id="crm-bob")
    client.force_login(person)
    assert connect_via_fake_zoom(client, fake_zoom, zoom_user_id="zu_bob").status_code == 200
    client.logout()
    return ZoomConnection.objects.get(zoom_user_id="zu_bob")


@pytest.fixture
def alice_api(connection):
    _, key = ApiToken.issue(user=connection.user, name="backend")
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def test_allow_obf_for_others_is_off_by_default_and_each_change_is_in_the_history(api_client, bob):
    assert bob.allow_obf_for_others is False
    _, key = ApiToken.issue(user=bob.user, name="bob")
    owner = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    url = f"/api/connections/{bob.public_id}/"
    response = api_client.patch(url, {"allow_obf_for_others": True}, format="json", **owner)
    assert response.status_code == 200 and response.json()["allow_obf_for_others"] is True
    entry = LogEntry.objects.get()
    assert entry.user_id == bob.user_id and "OBF for other users' bots" in entry.change_message
    assert "on" in entry.change_message and entry.object_id == str(bob.pk)
    assert api_client.patch(url, {}, format="json", **owner).status_code == 400


def test_the_backend_relays_a_users_choice_with_the_change_permission(api_client, bob):
    url = f"/api/connections/{bob.public_id}/"
    viewer = staff_with("zoomauth.view_zoomconnection")
    assert api_client.patch(url, {"allow_obf_for_others": True}, format="json", **viewer).status_code == 403
    User.objects.filter(username="ops").delete()
    backend = staff_with("zoomauth.view_zoomconnection", "zoomauth.change_zoomconnection")
    body = {"allow_obf_for_others": True, "allow_join_tokens_for_others": True}
    response = api_client.patch(url, body, format="json", **backend)
    assert response.status_code == 200, response.json()
    bob.refresh_from_db()
    assert bob.allow_obf_for_others and bob.allow_join_tokens_for_others
    assert sorted(LogEntry.objects.values_list("user__username", flat=True)) == ["ops", "ops"]


def test_the_users_page_switches_obf_sharing(client, bob):
    client.force_login(bob.user)
    assert "bots to carry my OBF token" in client.get("/").content.decode()
    response = client.post(f"/zoom/connections/{bob.public_id}/join-token-sharing/", {"setting": "obf", "allow": "1"})
    assert response.status_code == 302
    bob.refresh_from_db()
    assert bob.allow_obf_for_others and not bob.allow_join_tokens_for_others
    assert LogEntry.objects.get().user_id == bob.user_id


def test_a_candidate_who_has_not_opted_in_makes_the_launch_a_403(api_client, connection, bob, alice_api, fake_recall):
    body = {
        "meeting_url": f"https://zoom.us/j/{MEETING}",
        "connection": str(connection.public_id),
        "token_kinds": ["obf"],
        "obf_candidates": ["crm-bob"],
    }
    response = api_client.post("/api/bots/", body, format="json", **alice_api)
    assert response.status_code == 403 and "has not allowed" in response.json()["detail"]
    # Named by its connection id: another user's email is not the launcher's to learn by guessing ids.
    assert str(bob.public_id) in response.json()["detail"]
    assert (
        bob.email and bob.email not in response.json()["detail"] and bob.zoom_user_id not in response.json()["detail"]
    )
    assert not Bot.objects.exists() and fake_recall.bots == {}
    body["obf_candidates"] = ["nobody-here"]
    response = api_client.post("/api/bots/", body, format="json", **alice_api)
    assert response.status_code == 400 and "obf_candidates" in response.json()


def test_the_obf_is_minted_for_the_candidate_in_the_meeting_when_the_launcher_is_not(
    api_client, connection, bob, alice_api, meeting, fake_zoom, fake_recall
):
    ZoomConnection.objects.filter(pk=bob.pk).update(allow_obf_for_others=True)
    fake_zoom.start_meeting(MEETING)
    worker_turn()
    body = {
        "meeting_url": f"https://zoom.us/j/{MEETING}",
        "connection": str(connection.public_id),
        "token_kinds": ["obf"],
        "obf_candidates": [str(bob.public_id)],
        "start": "when_user_joins",
    }
    response = api_client.post("/api/bots/", body, format="json", **alice_api)
    assert response.status_code == 202, response.json()
    assert response.json()["obf_candidates"] == [str(bob.public_id)]
    fake_zoom.join(MEETING, "zu_bob")  # the candidate joins; Alice never does
    worker_turn()
    bot = wait_for_status(Bot.objects.get(public_id=response.json()["id"]), "done")
    assert "in_call_recording" in list(bot.status_changes.values_list("code", flat=True))
    minted = [t for t in fake_zoom.minted.values() if t["kind"] == "obf"]
    assert [t["user_id"] for t in minted] == ["zu_bob"]
    assert CallbackLog.objects.get(kind="obf").connection_id == bob.pk
    fetches = api_client.get(f"/api/bots/{bot.public_id}/", **alice_api).json()["token_fetches"]
    assert [(f["kind"], f["connection"]) for f in fetches] == [("obf", str(bob.public_id))]
    assert fake_recall.host_notified.get(MEETING, 0) == 0


def test_the_launcher_in_the_meeting_comes_first(api_client, connection, bob, alice_api, meeting, fake_zoom):
    ZoomConnection.objects.filter(pk=bob.pk).update(allow_obf_for_others=True)
    fake_zoom.join(MEETING, "zu_bob")
    fake_zoom.join(MEETING, "zu_alice")
    worker_turn()
    body = {
        "meeting_url": f"https://zoom.us/j/{MEETING}",
        "connection": str(connection.public_id),
        "token_kinds": ["obf"],
        "obf_candidates": ["crm-bob"],
        "start": "when_user_joins",
    }
    response = api_client.post("/api/bots/", body, format="json", **alice_api)
    assert response.status_code == 201, response.json()
    wait_for_status(Bot.objects.get(public_id=response.json()["id"]), "done")
    assert CallbackLog.objects.get(kind="obf").connection_id == connection.pk
