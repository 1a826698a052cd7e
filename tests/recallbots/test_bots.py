"""Launching bots through the fake Recall, whose simulated bots GET the broker's token URLs."""

import json
import time

import pytest
from django.test import Client

from accounts.models import ApiToken
from fakes.recall import standard_webhook_headers
from recallbots.models import Bot, BotStatusChange

# Every test here talks to the broker over HTTP (the fake Recall calls back into it).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("live_broker")]

MEETING = "85012345678"


@pytest.fixture
def meeting(fake_zoom, zoom_app):
    fake_zoom.add_meeting(id=MEETING, host_id="zu_alice")
    return MEETING


def wait_for_status(bot: Bot, *codes: str, timeout: float = 20.0) -> Bot:
    deadline = time.time() + timeout
    while time.time() < deadline:
        bot.refresh_from_db()
        if bot.status in codes:
            return bot
        time.sleep(0.1)
    raise AssertionError(f"bot stayed {bot.status}; history {list(bot.status_changes.values_list('code', flat=True))}")


def test_launch_page_obf_bot_joins_once_the_user_is_in_the_meeting(client, connection, meeting, fake_zoom, fake_recall):
    client.force_login(connection.user)
    assert client.get("/launch/").status_code == 200
    response = client.post(
        "/launch/",
        {
            "meeting_url": f"https://us02web.zoom.us/j/{MEETING}?pwd=abc",
            "connection": connection.pk,
            "token_kinds": ["obf"],
            "bot_name": "Notes",
        },
    )
    assert response.status_code == 302
    bot = Bot.objects.get()
    wait_for_status(bot, "in_waiting_room")
    fake_zoom.join(MEETING, "zu_alice")
    wait_for_status(bot, "done")
    codes = list(bot.status_changes.values_list("code", flat=True))
    assert codes == ["joining_call", "in_waiting_room", "in_call_recording", "call_ended", "done"]
    remote = fake_recall.bots[bot.recall_id]
    assert remote["_automatic_leave"] == {"waiting_room_timeout": 1200}
    assert remote["_observed"]["obf"]["status"] == 200
    page = client.get(f"/bots/{bot.public_id}/").content.decode()
    assert "done" in page and connection.callback_secret not in page


def test_api_launch_with_join_token_and_zak(api_client, connection, meeting, fake_recall):
    _, key = ApiToken.issue(user=connection.user, name="backend")
    response = api_client.post(
        "/api/bots/",
        {
            "meeting_url": f"https://zoom.us/j/{MEETING}",
            "connection": str(connection.public_id),
            "token_kinds": ["join_token", "zak"],
            "bypass_waiting_room": True,
            "metadata": {"crm": "42"},
        },
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 201, response.json()
    bot = wait_for_status(Bot.objects.get(public_id=response.json()["id"]), "done")
    assert bot.status_changes.filter(code="in_call_recording").exists()
    sent = fake_recall.bots[bot.recall_id]
    assert set(sent["_zoom"]) == {"join_token_url", "zak_url"}
    assert "bypass_waiting_room" not in sent["_zoom"]["join_token_url"]  # the bot's grant holds it
    assert sent["metadata"]["crm"] == "42"
    detail = api_client.get(f"/api/bots/{bot.public_id}/", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert detail["status"] == "done" and [c["code"] for c in detail["status_changes"]][-1] == "done"


def test_api_rejects_bad_meeting_urls_and_foreign_connections(api_client, connection, user):
    _, key = ApiToken.issue(user=connection.user, name="backend")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    bad = api_client.post("/api/bots/", {"meeting_url": "https://meet.google.com/x"}, format="json", **auth)
    assert bad.status_code == 400 and "not a Zoom link" in bad.json()["meeting_url"][0]
    other = api_client.post(
        "/api/bots/",
        {"meeting_url": f"https://zoom.us/j/{MEETING}", "connection": "00000000-0000-0000-0000-000000000000"},
        format="json",
        **auth,
    )
    assert other.status_code == 400 and "belongs to you" in other.json()["connection"][0]


def test_openapi_schema_describes_the_bot_api(api_client, staff):
    api_client.force_authenticate(staff)
    schema = api_client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert "/api/bots/" in json.loads(schema.content)["paths"]


def test_admin_launch_with_a_service_account_zak_into_a_sign_in_meeting(
    client, staff, connection, fake_zoom, fake_recall
):
    fake_zoom.add_meeting(id="86111111111", host_id="zu_bob", requires_sign_in=True)
    type(connection).objects.filter(pk=connection.pk).update(is_service_account=True)
    client.force_login(staff)
    response = client.post(
        "/admin/recallbots/bot/add/",
        {
            "user": staff.pk,
            "meeting_url": "https://zoom.us/j/86111111111",
            "token_kinds": ["zak"],
            "zak_from_service_account": "on",
            "bot_name": "Signed in",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    bot = wait_for_status(Bot.objects.get(), "done", "fatal")
    assert bot.status == "done"
    assert fake_recall.bots[bot.recall_id]["_observed"]["zak"]["status"] == 200


def test_fatal_sub_code_is_shown_with_a_hint(client, connection, fake_zoom):
    fake_zoom.add_meeting(id="86222222222", host_id="zu_bob", requires_sign_in=True)
    client.force_login(connection.user)
    client.post(
        "/launch/",
        {
            "meeting_url": "https://zoom.us/j/86222222222",
            "connection": connection.pk,
            "token_kinds": [],
            "bot_name": "x",
        },
    )
    bot = wait_for_status(Bot.objects.get(), "fatal")
    assert bot.sub_code == "meeting_requires_sign_in"
    assert "launch with a ZAK" in client.get(f"/bots/{bot.public_id}/").content.decode()


def test_launch_page_shows_form_errors(client, connection):
    client.force_login(connection.user)
    response = client.post("/launch/", {"meeting_url": "https://example.com/x", "bot_name": "x"})
    assert response.status_code == 400
    assert "not a Zoom link" in response.content.decode()


def test_status_webhook_is_verified_and_idempotent(connection, settings, fake_recall):
    bot = Bot.objects.create(user=connection.user, meeting_url="https://zoom.us/j/1", recall_id="rb_1")
    body = json.dumps(
        {
            "event": "bot.joining_call",
            "data": {
                "data": {"code": "joining_call", "sub_code": None, "updated_at": "2026-11-24T10:00:00Z"},
                "bot": {"id": "rb_1", "metadata": {}},
            },
        }
    ).encode()
    headers = {
        f"HTTP_{k.upper().replace('-', '_')}": v
        for k, v in standard_webhook_headers(settings.RECALL_VERIFICATION_SECRET, body).items()
    }
    client = Client()
    for _ in range(2):
        assert (
            client.post("/recall/webhooks/bot-status/", body, content_type="application/json", **headers).status_code
            == 200
        )
    assert BotStatusChange.objects.filter(bot=bot).count() == 1
    headers["HTTP_WEBHOOK_SIGNATURE"] = "v1,bm9wZQ=="
    assert (
        client.post("/recall/webhooks/bot-status/", body, content_type="application/json", **headers).status_code == 401
    )


def test_recall_signed_token_gets_are_verified(client, connection, meeting, fake_zoom, fake_recall, settings):
    settings.RECALL_ACCEPT_UNSIGNED_CALLBACKS = False  # only signed GETs from Recall are served
    fake_recall.configure(sign_token_requests=True)
    client.force_login(connection.user)
    client.post(
        "/launch/",
        {
            "meeting_url": f"https://zoom.us/j/{MEETING}",
            "connection": connection.pk,
            "token_kinds": ["join_token"],
            "bot_name": "x",
        },
    )
    bot = wait_for_status(Bot.objects.get(), "done", "fatal")
    assert bot.status == "done"
    from zoomauth.models import CallbackLog

    log = CallbackLog.objects.get(kind="join-token")
    assert (log.status_code, log.signature_checked) == (200, True)


def test_admin_launch_failure_keeps_staff_on_the_form_with_the_reason(client, staff, connection):
    client.force_login(staff)
    response = client.post(
        "/admin/recallbots/bot/add/",
        {
            "user": staff.pk,
            "meeting_url": "https://zoom.us/j/123456789",
            "token_kinds": ["zak"],
            "zak_from_service_account": "on",
            "bot_name": "x",
        },
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    assert shown == ["No service account is set: staff mark one Zoom connection as the service account."]
    assert response.redirect_chain[-1][0] == "/admin/recallbots/bot/add/"
    assert not Bot.objects.exists()


@pytest.mark.parametrize("body", [b"[]", b'{"event": "bot.done", "data": {"data": "x", "bot": "y"}}', b"{"])
def test_malformed_status_events_get_400(settings, body):
    headers = {
        f"HTTP_{k.upper().replace('-', '_')}": v
        for k, v in standard_webhook_headers(settings.RECALL_VERIFICATION_SECRET, body).items()
    }
    response = Client().post("/recall/webhooks/bot-status/", body, content_type="application/json", **headers)
    assert response.status_code == 400
