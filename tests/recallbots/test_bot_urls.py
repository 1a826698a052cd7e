"""Each bot's token URLs carry the bot's own credential: its kinds, its meeting, its life. Every
check below is the attacker's request, made over the broker's HTTP interface."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from fakes.recall import standard_webhook_headers
from recallbots.models import Bot
from tests.conftest import WHSEC, connect_via_fake_zoom
from tests.recallbots.conftest import ALICE_MEETING, BOB_MEETING
from tests.zoomauth.test_callbacks import path_of
from zoomauth.models import CallbackLog, ZoomConnection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice_api(connection, fake_zoom, fake_recall):
    fake_zoom.add_meeting(id=ALICE_MEETING, host_id="zu_alice")
    fake_zoom.join(ALICE_MEETING, "zu_alice")
    _, key = ApiToken.issue(user=connection.user, name="alice's backend")
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def launch(api_client, auth, connection, meeting_id: str, kinds: list[str]):
    return api_client.post(
        "/api/bots/",
        {
            "meeting_url": f"https://zoom.us/j/{meeting_id}",
            "connection": str(connection.public_id),
            "token_kinds": kinds,
        },
        format="json",
        **auth,
    )


def sent_urls(fake_recall, response) -> dict:
    bot = Bot.objects.get(public_id=response.json()["id"])
    return fake_recall.bots[bot.recall_id]["_zoom"]


def test_a_bot_into_another_users_meeting_needs_the_hosts_opt_in(
    api_client, client, connection, bob, alice_api, fake_recall
):
    refused = launch(api_client, alice_api, connection, BOB_MEETING, ["join_token"])
    assert refused.status_code == 403
    assert "has not allowed join tokens" in refused.json()["detail"]
    assert not Bot.objects.exists()  # nothing launched, no URL made

    ZoomConnection.objects.filter(pk=bob.pk).update(allow_join_tokens_for_others=True)  # bob's choice
    allowed = launch(api_client, alice_api, connection, BOB_MEETING, ["join_token"])
    assert allowed.status_code == 201, allowed.content
    config = json.dumps(sent_urls(fake_recall, allowed))
    assert bob.callback_secret not in config and connection.callback_secret not in config
    join_url = sent_urls(fake_recall, allowed)["join_token_url"]
    assert client.get(path_of(join_url)).status_code == 200  # bob's meeting: minted from bob's grant
    other_meeting = path_of(join_url).replace(f"meeting_id={BOB_MEETING}", f"meeting_id={ALICE_MEETING}")
    assert client.get(other_meeting).status_code == 403
    log = CallbackLog.objects.filter(status_code=200).get()
    assert log.grant.holder == f"bot:{allowed.json()['id']}"  # the audit names the bot


def test_a_bots_url_serves_only_its_kinds_its_meeting_and_its_life(
    api_client, client, connection, alice_api, fake_recall, fake_zoom, settings
):
    first = launch(api_client, alice_api, connection, ALICE_MEETING, ["obf"])
    second = launch(api_client, alice_api, connection, ALICE_MEETING, ["zak"])
    obf_url = path_of(sent_urls(fake_recall, first)["obf_token_url"])
    zak_url = path_of(sent_urls(fake_recall, second)["zak_url"])
    assert client.get(obf_url).status_code == 200
    assert client.get(obf_url.replace("/obf/", "/zak/")).status_code == 403  # another kind
    assert client.get(obf_url.replace("/obf/", "/access-token/")).status_code == 403  # never the raw token
    assert client.get(obf_url.replace(ALICE_MEETING, "85099990009")).status_code == 403  # another meeting
    wrong = obf_url.split("auth_token=")[0] + "auth_token=guess&meeting_id=" + ALICE_MEETING
    assert client.get(wrong).status_code == 401

    settings.BOT_URL_GRACE = timedelta(0)
    settings.RECALL_VERIFICATION_SECRET = WHSEC
    bot = Bot.objects.get(public_id=first.json()["id"])
    body = json.dumps(
        {
            "event": "bot.done",
            "data": {
                "data": {"code": "done", "sub_code": None, "updated_at": timezone.now().isoformat()},
                "bot": {"id": bot.recall_id, "metadata": {}},
            },
        }
    ).encode()
    headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in standard_webhook_headers(WHSEC, body).items()}
    assert (
        client.post("/recall/webhooks/bot-status/", body, content_type="application/json", **headers).status_code == 200
    )
    ended = client.get(obf_url)
    assert ended.status_code == 401 and b"has ended" in ended.content
    assert client.get(zak_url).status_code == 200  # the user's other bot goes on


def test_revoke_and_reconnect_end_every_earlier_url(
    api_client, client, user, connection, alice_api, fake_recall, fake_zoom
):
    bot_url = path_of(
        sent_urls(fake_recall, launch(api_client, alice_api, connection, ALICE_MEETING, ["zak"]))["zak_url"]
    )
    own_urls = [path_of(connection.zak_url), path_of(connection.access_token_callback_url)]
    assert [client.get(url).status_code for url in [bot_url, *own_urls]] == [200, 200, 200]

    client.force_login(user)
    client.post(f"/zoom/connections/{connection.public_id}/disconnect/")
    assert connect_via_fake_zoom(client, fake_zoom).status_code == 200  # the user connects again
    client.logout()
    reconnected = ZoomConnection.objects.get(pk=connection.pk)
    assert reconnected.status == ZoomConnection.Status.ACTIVE
    assert [client.get(url).status_code for url in [bot_url, *own_urls]] == [401, 401, 401]
    assert client.get(path_of(reconnected.zak_url)).status_code == 200  # the new URLs work


def test_a_user_who_lost_their_grant_reconnects_and_their_scheduled_bot_works_again(
    api_client, client, user, connection, alice_api, fake_recall, fake_zoom
):
    from tests.conftest import CLIENT_ID
    from tests.zoomauth.test_callbacks import introspect

    join_at = (timezone.now() + timedelta(hours=2)).isoformat()
    response = api_client.post(
        "/api/bots/",
        {
            "meeting_url": f"https://zoom.us/j/{ALICE_MEETING}",
            "connection": str(connection.public_id),
            "token_kinds": ["zak", "obf"],
            "join_at": join_at,
        },
        format="json",
        **alice_api,
    )
    assert response.status_code == 201, response.content
    urls = sent_urls(fake_recall, response)
    zak_url, obf_url = path_of(urls["zak_url"]), path_of(urls["obf_token_url"])
    access_url = path_of(connection.access_token_callback_url)  # what Recall's credential holds

    # Zoom refuses the refresh token (the user removed the app, or Zoom lost the grant).
    fake_zoom.grants[(CLIENT_ID, "zu_alice")] += 1
    ZoomConnection.objects.filter(pk=connection.pk).update(access_token_expires_at=timezone.now())
    assert client.get(access_url).status_code == 410
    assert ZoomConnection.objects.get(pk=connection.pk).status == ZoomConnection.Status.NEEDS_RECONNECT
    assert client.get(zak_url).status_code == 410

    client.force_login(user)
    assert connect_via_fake_zoom(client, fake_zoom).status_code == 200  # the real OAuth flow again
    client.logout()
    assert ZoomConnection.objects.get(pk=connection.pk).status == ZoomConnection.Status.ACTIVE
    zak = client.get(zak_url)
    assert zak.status_code == 200 and introspect(fake_zoom, "zak", zak.content.decode())["valid"]
    obf = client.get(obf_url)
    assert obf.status_code == 200
    assert introspect(fake_zoom, "obf", obf.content.decode(), ALICE_MEETING, consume=False)["valid"]
    access = client.get(access_url)
    assert access.status_code == 200 and introspect(fake_zoom, "access_token", access.content.decode())["valid"]

    client.force_login(user)
    client.post(f"/zoom/connections/{connection.public_id}/disconnect/")  # a revoke...
    assert connect_via_fake_zoom(client, fake_zoom).status_code == 200  # ...then a reconnect
    client.logout()
    assert [client.get(url).status_code for url in (zak_url, obf_url, access_url)] == [401, 401, 401]


def test_rotating_the_secret_works_whatever_the_connections_state(api_client, connection, staff):
    from zoomauth.services import connection_disconnect

    connection_disconnect(connection=connection, revoke_at_zoom=False)
    _, key = ApiToken.issue(user=staff, name="ops")
    before = ZoomConnection.objects.get(pk=connection.pk).callback_secret_hash
    response = api_client.post(
        f"/api/connections/{connection.public_id}/rotate-secret/", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 200
    assert ZoomConnection.objects.get(pk=connection.pk).callback_secret_hash != before


def test_a_bot_whose_create_answer_was_lost_is_found_by_its_status_webhook(
    api_client, client, connection, alice_api, fake_recall, settings
):
    """The page's launch: Recall created the bot but its answer was lost and the lookup did not see
    it yet, so the broker said launch_failed. Recall's first status webhook names the broker's bot
    in its metadata: the bot is tracked from then on and its URLs work again."""
    settings.RECALL_VERIFICATION_SECRET = WHSEC
    launched = launch(api_client, alice_api, connection, ALICE_MEETING, ["obf"])
    bot = Bot.objects.get(public_id=launched.json()["id"])
    obf_url = path_of(sent_urls(fake_recall, launched)["obf_token_url"])
    recall_id = bot.recall_id
    Bot.objects.filter(pk=bot.pk).update(recall_id=None, status=Bot.Status.LAUNCH_FAILED)  # what the broker believed
    from zoomauth.services import callback_grants_end

    callback_grants_end(holder=bot.callback_holder)
    assert client.get(obf_url).status_code == 401
    body = json.dumps(
        {
            "event": "bot.joining_call",
            "data": {
                "data": {"code": "joining_call", "sub_code": None, "updated_at": timezone.now().isoformat()},
                "bot": {"id": recall_id, "metadata": {"broker_bot_id": str(bot.public_id)}},
            },
        }
    ).encode()
    headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in standard_webhook_headers(WHSEC, body).items()}
    answer = client.post("/recall/webhooks/bot-status/", body, content_type="application/json", **headers)
    assert answer.status_code == 200
    bot.refresh_from_db()
    assert bot.recall_id == recall_id and bot.status == "joining_call"
    assert client.get(obf_url).status_code == 200  # its URLs work again


@pytest.mark.parametrize("launched_with", [False, True])
def test_bypass_waiting_room_is_what_the_launch_decided_whatever_the_bots_url_says(
    api_client, client, connection, alice_api, fake_recall, fake_zoom, launched_with
):
    from tests.zoomauth.test_callbacks import introspect

    response = api_client.post(
        "/api/bots/",
        {
            "meeting_url": f"https://zoom.us/j/{ALICE_MEETING}",
            "connection": str(connection.public_id),
            "token_kinds": ["join_token"],
            "bypass_waiting_room": launched_with,
        },
        format="json",
        **alice_api,
    )
    assert response.status_code == 201, response.content
    join_url = path_of(sent_urls(fake_recall, response)["join_token_url"])
    # Whoever holds the bot's URL asks for the other choice: the launch's stands.
    for asked in ("true", "false"):
        fetched = client.get(f"{join_url}&bypass_waiting_room={asked}")
        assert fetched.status_code == 200, fetched.content
        seen = introspect(fake_zoom, "join_token", fetched.content.decode(), ALICE_MEETING, consume=False)
        assert seen["valid"] and seen["bypass"] is launched_with


def test_the_connections_own_join_token_url_keeps_its_bypass_query(client, connection, fake_zoom):
    from tests.zoomauth.test_callbacks import introspect

    fake_zoom.add_meeting(id=ALICE_MEETING, host_id="zu_alice")
    url = path_of(connection.callback_url("join-token", meeting_id=ALICE_MEETING, bypass_waiting_room="true"))
    client.logout()
    fetched = client.get(url)
    assert fetched.status_code == 200, fetched.content
    assert introspect(fake_zoom, "join_token", fetched.content.decode(), ALICE_MEETING, consume=False)["bypass"] is True
