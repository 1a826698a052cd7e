"""The recallbots admin as staff with only the neighbouring permission would use it: its actions
(forged POSTs included), and the bot launcher, which follows the API's launch rule."""

import pytest

from accounts.models import ApiToken
from recallbots.models import Bot, RecallCredential, RecallOAuthApp
from recallbots.selectors import NOT_YOUR_CONNECTION
from recallbots.services import credential_create_customer_managed
from tests.recallbots.conftest import ALICE_MEETING, BOB_MEETING
from tests.staff import offered_actions, post_action, staff_with
from zoomauth.models import ZoomApp

# Every test here talks to the broker over HTTP (the fake Recall calls back into it).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("live_broker")]

APPS = "/admin/recallbots/recalloauthapp/"
CREDENTIALS = "/admin/recallbots/recallcredential/"
LAUNCHER = "/admin/recallbots/bot/add/"


@pytest.fixture
def credential(recall_app, connection):
    return credential_create_customer_managed(connection=connection)


def test_a_viewer_can_neither_delete_nor_push_a_recall_app(client, recall_app, fake_recall):
    ZoomApp.objects.filter(pk=recall_app.zoom_app_id).update(webhook_secret="rotated-token")
    client.force_login(staff_with("recallbots.view_recalloauthapp"))
    assert offered_actions(client, APPS) == set()
    for action in ("delete_in_recall", "push_secrets"):
        post_action(client, APPS, action, recall_app.pk)
    assert RecallOAuthApp.objects.filter(pk=recall_app.pk).exists() and recall_app.recall_id in fake_recall.apps
    assert fake_recall.apps[recall_app.recall_id]["webhook_secret"] == "fake-webhook-secret-token"


def test_pushing_secrets_needs_change_and_deleting_needs_delete(client, recall_app, fake_recall):
    ZoomApp.objects.filter(pk=recall_app.zoom_app_id).update(webhook_secret="rotated-token")
    client.force_login(staff_with("recallbots.view_recalloauthapp", "recallbots.change_recalloauthapp"))
    assert offered_actions(client, APPS) == {"push_secrets"}
    post_action(client, APPS, "delete_in_recall", recall_app.pk)
    assert RecallOAuthApp.objects.filter(pk=recall_app.pk).exists()
    assert post_action(client, APPS, "push_secrets", recall_app.pk).status_code == 302
    assert fake_recall.apps[recall_app.recall_id]["webhook_secret"] == "rotated-token"

    client.force_login(staff_with("recallbots.view_recalloauthapp", "recallbots.delete_recalloauthapp"))
    assert offered_actions(client, APPS) == {"delete_in_recall"}
    assert post_action(client, APPS, "delete_in_recall", recall_app.pk).status_code == 302
    assert not RecallOAuthApp.objects.exists() and recall_app.recall_id not in fake_recall.apps


def test_a_viewer_can_neither_sync_nor_recreate_a_credential(client, credential, fake_recall):
    fake_recall.credentials[credential.recall_id]["status"] = "unhealthy"
    client.force_login(staff_with("recallbots.view_recallcredential"))
    assert offered_actions(client, CREDENTIALS) == set()
    for action in ("sync_status", "recreate"):
        post_action(client, CREDENTIALS, action, credential.pk)
    assert RecallCredential.objects.get().status == "healthy"
    assert list(fake_recall.credentials) == [credential.recall_id]


def test_syncing_and_recreating_a_credential_need_the_change_permission(client, credential, fake_recall):
    fake_recall.credentials[credential.recall_id]["status"] = "unhealthy"
    client.force_login(staff_with("recallbots.view_recallcredential", "recallbots.change_recallcredential"))
    assert offered_actions(client, CREDENTIALS) == {"sync_status", "recreate"}
    assert post_action(client, CREDENTIALS, "sync_status", credential.pk).status_code == 302
    assert RecallCredential.objects.get().status == "unhealthy"
    assert post_action(client, CREDENTIALS, "recreate", credential.pk).status_code == 302
    assert RecallCredential.objects.get().recall_id != credential.recall_id


def launch_form(connection, kinds=("obf",), meeting=ALICE_MEETING, *, user) -> dict:
    return {
        "user": user.pk,
        "connection": connection.pk,
        "meeting_url": f"https://zoom.us/j/{meeting}",
        "token_kinds": list(kinds),
        "bot_name": "Staff bot",
    }


def test_the_admin_launcher_refuses_another_users_connection_with_the_apis_reason(
    client, api_client, connection, fake_recall
):
    staff = staff_with("recallbots.add_bot", "recallbots.view_bot")
    client.force_login(staff)
    form = client.get(LAUNCHER).content.decode()
    assert f'<option value="{connection.pk}"' not in form  # alice's connection is not offered
    response = client.post(LAUNCHER, launch_form(connection, user=staff))
    assert response.status_code == 200
    admin_reason = response.context["adminform"].form.errors["connection"]
    assert not Bot.objects.exists() and not fake_recall.bots

    _, key = ApiToken.issue(user=staff, name="staff's backend")
    api = api_client.post(
        "/api/bots/",
        {"meeting_url": f"https://zoom.us/j/{ALICE_MEETING}", "connection": str(connection.public_id)},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert api.status_code == 400
    assert admin_reason == api.json()["connection"] == [NOT_YOUR_CONNECTION]


def test_the_admin_launcher_uses_another_users_connection_with_launch_on_any(
    client, connection, fake_zoom, fake_recall
):
    fake_zoom.add_meeting(id=ALICE_MEETING, host_id="zu_alice")
    staff = staff_with("recallbots.add_bot", "recallbots.view_bot", "recallbots.launch_on_any_connection")
    client.force_login(staff)
    assert f'<option value="{connection.pk}"' in client.get(LAUNCHER).content.decode()
    response = client.post(LAUNCHER, launch_form(connection, user=staff))
    assert response.status_code == 302, response.context["adminform"].form.errors
    bot = Bot.objects.get()
    assert bot.connection == connection and bot.recall_id in fake_recall.bots


def test_the_admin_launcher_needs_the_hosts_opt_in_for_a_join_token(client, connection, bob, fake_recall):
    staff = staff_with("recallbots.add_bot", "recallbots.view_bot", "recallbots.launch_on_any_connection")
    client.force_login(staff)
    response = client.post(LAUNCHER, launch_form(connection, ["join_token"], BOB_MEETING, user=staff), follow=True)
    shown = " ".join(str(m) for m in response.context["messages"])
    assert "has not allowed join tokens for other users' bots" in shown
    assert not Bot.objects.exists() and not fake_recall.bots


def test_the_launch_page_refuses_another_users_connection_with_the_apis_reason(client, connection, bob):
    client.force_login(connection.user)
    response = client.post(
        "/launch/",
        {
            "meeting_url": f"https://zoom.us/j/{BOB_MEETING}",
            "connection": bob.pk,
            "token_kinds": ["obf"],
            "bot_name": "x",
        },
    )
    assert response.status_code == 400 and NOT_YOUR_CONNECTION in response.content.decode()
    assert not Bot.objects.exists()
