"""Hand-off (`"handoff": true`): the fake Zoom sends its signed participant events to the broker's
intake over real HTTP, a worker's turn runs the queued tasks, and the fake Recall removes an OBF
bot the moment its token's user leaves (as Zoom does) and reports it to the broker's webhook."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from recallbots import handoff
from recallbots.models import Bot
from tests.conftest import run_queued_tasks
from tests.recallbots.test_bots import wait_for_status
from tests.recallbots.test_candidates import alice_api as alice_api  # noqa: F401
from tests.recallbots.test_candidates import bob as bob  # noqa: F401 - bob, crm-bob, connected
from tests.recallbots.test_waiting import MEETING, worker_turn
from tests.recallbots.test_waiting import _live as _live  # noqa: F401 - the same live broker and queues
from tests.recallbots.test_waiting import meeting as meeting  # noqa: F401
from webhooks.models import Event, EventEndpoint
from zoomauth.models import CallbackLog, ZoomConnection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def both_in(bob, meeting, fake_zoom, fake_recall):  # noqa: F811
    """Bob allows other users' bots to carry his OBF; Alice and Bob are in the meeting, and a bot
    stays in the call until its OBF user leaves (or 30 s pass: the host would end it)."""
    ZoomConnection.objects.filter(pk=bob.pk).update(allow_obf_for_others=True)
    fake_recall.configure(call_seconds=30)
    fake_zoom.join(MEETING, "zu_alice")
    fake_zoom.join(MEETING, "zu_bob")
    worker_turn()
    return bob


def launch_in_call(api_client, connection, headers, **extra) -> Bot:
    body = {
        "meeting_url": f"https://zoom.us/j/{MEETING}",
        "connection": str(connection.public_id),
        "token_kinds": ["obf"],
        "obf_candidates": ["crm-bob"],
        "handoff": True,
        **extra,
    }
    response = api_client.post("/api/bots/", body, format="json", **headers)
    assert response.status_code == 201, response.json()
    return wait_for_status(Bot.objects.get(public_id=response.json()["id"]), "in_call_recording")


def minted_for(bot: Bot) -> list[int]:
    return list(
        CallbackLog.objects.filter(grant__holder=bot.callback_holder, kind="obf", status_code=200).values_list(
            "connection_id", flat=True
        )
    )


def in_call(fake_recall, bot: Bot) -> tuple[float, float | None]:
    return tuple(fake_recall.bots[bot.recall_id]["_in_call"])


def test_the_obf_user_leaving_hands_the_bot_to_the_candidate_still_in(
    api_client, connection, both_in, alice_api, fake_zoom, fake_recall
):
    EventEndpoint.objects.create(url="http://127.0.0.1:9/", secret=EventEndpoint.new_secret())
    first = launch_in_call(api_client, connection, alice_api)
    assert minted_for(first) == [connection.pk]  # the launcher is in: her OBF
    fake_zoom.leave(MEETING, "zu_alice")  # Zoom removes the bot that carries her token
    worker_turn()
    first.refresh_from_db()
    successor = Bot.objects.get(previous_bot=first)
    assert (successor.handoff_generation, successor.handoff, successor.meeting_id) == (1, True, MEETING)
    successor = wait_for_status(successor, "in_call_recording")
    assert minted_for(successor) == [both_in.pk]  # minted for Bob, who is in
    assert fake_recall.bots[successor.recall_id]["metadata"]["broker_bot_id"] == str(successor.public_id)
    wait_for_status(first, "done")
    assert first.status_changes.get(code="call_ended").sub_code == "authorized_user_left_meeting"
    # Never two bots of the launch in the call at once: the first was out before the successor was in.
    assert in_call(fake_recall, first)[1] <= in_call(fake_recall, successor)[0]
    assert fake_recall.host_notified.get(MEETING, 0) == 0

    api = {bot["id"]: bot for bot in api_client.get("/api/bots/", **alice_api).json()}
    assert api[str(first.public_id)]["next_bot"] == str(successor.public_id)
    assert api[str(first.public_id)]["previous_bot"] is None
    assert api[str(successor.public_id)]["previous_bot"] == str(first.public_id)
    assert api[str(successor.public_id)]["next_bot"] is None
    events = [e.data["bot"] for e in Event.objects.filter(type="bot.status_changed").order_by("pk")]
    announced = next(e for e in events if e["id"] == str(successor.public_id))  # the backend hears of it at once
    assert announced["status"] == "queued" and announced["next_bot"] is None
    assert announced["previous_bot"] == str(first.public_id)
    assert all(e["previous_bot"] is None for e in events if e["id"] == str(first.public_id))
    worker_turn()  # Recall's call_ended for the first bot asked for a hand-off too: claimed already
    assert Bot.objects.count() == 2


def test_a_leave_that_zoom_sends_twice_and_recalls_removal_make_one_successor(
    api_client, connection, both_in, alice_api, fake_zoom, fake_recall
):
    first = launch_in_call(api_client, connection, alice_api)
    fake_zoom.leave(MEETING, "zu_alice", twice=True)
    wait_for_status(first, "done")  # Recall's removal has come too
    worker_turn()
    assert Bot.objects.filter(previous_bot=first).count() == 1 and len(fake_recall.bots) == 2


def test_recalls_removal_before_zoom_says_she_left_waits_for_zooms_late_event(
    api_client, connection, both_in, alice_api, fake_zoom, fake_recall
):
    from recallbots.tasks import bots_hand_off_due

    first = launch_in_call(api_client, connection, alice_api)
    fake_zoom.leave(MEETING, "zu_alice", hold=True)  # she is gone at Zoom; its event is late
    wait_for_status(first, "done")  # Recall's removal came (authorized_user_left_meeting)
    worker_turn()
    assert bots_hand_off_due.run() == 1  # beat's catch-up asks too
    worker_turn()
    assert not Bot.objects.filter(previous_bot=first).exists()  # presence still has her in: not yet
    fake_zoom.flush_events()
    worker_turn()
    successor = wait_for_status(Bot.objects.get(previous_bot=first), "in_call_recording")
    assert minted_for(successor) == [both_in.pk]


def test_concurrent_hand_offs_of_one_bot_claim_it_once(
    api_client, connection, both_in, alice_api, fake_zoom, fake_recall
):
    from brokerproject.redis_client import shared_redis

    first = launch_in_call(api_client, connection, alice_api)
    fake_zoom.leave(MEETING, "zu_alice")
    run_queued_tasks("zoom-events")  # presence has her leave; the hand-off tasks wait on "recall"
    shared_redis().delete("recall")
    start = threading.Barrier(4)

    def hand_off(_):
        try:
            start.wait()
            return handoff.bot_hand_off(bot_id=first.pk)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        made = [bot for bot in pool.map(hand_off, range(4)) if bot is not None]
    assert len(made) == 1 and Bot.objects.filter(previous_bot=first).count() == 1
    assert len(fake_recall.bots) == 2


def test_at_most_three_successors_per_launch(api_client, connection, both_in, alice_api, fake_zoom, fake_recall):
    bot = launch_in_call(api_client, connection, alice_api)
    chain = [bot]
    for leaver in ["zu_alice", "zu_bob", "zu_alice", "zu_bob"]:
        fake_zoom.leave(MEETING, leaver)
        worker_turn()
        wait_for_status(chain[-1], "done")
        worker_turn()
        successor = Bot.objects.filter(previous_bot=chain[-1]).first()
        if successor is None:
            break
        chain.append(wait_for_status(successor, "in_call_recording"))
        fake_zoom.join(MEETING, leaver)  # back in: the next hand-off may go to them
        worker_turn()
    assert [b.handoff_generation for b in chain] == [0, 1, 2, 3]
    assert Bot.objects.count() == 4 and len(fake_recall.bots) == 4
    spans = [in_call(fake_recall, b) for b in chain]
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:], strict=False))


def test_no_successor_after_the_meeting_ended(api_client, connection, both_in, alice_api, fake_zoom, fake_recall):
    first = launch_in_call(api_client, connection, alice_api)
    fake_zoom.end_meeting(MEETING)  # everyone's leave, then meeting.ended
    worker_turn()
    wait_for_status(first, "done")
    worker_turn()
    assert not Bot.objects.filter(previous_bot=first).exists() and len(fake_recall.bots) == 1


def test_no_successor_when_no_one_else_of_the_launch_is_in(
    api_client, connection, both_in, alice_api, fake_zoom, fake_recall
):
    first = launch_in_call(api_client, connection, alice_api)
    fake_zoom.leave(MEETING, "zu_bob")  # the candidate leaves first: the bot carries Alice's token
    worker_turn()
    assert not Bot.objects.filter(previous_bot=first).exists()
    fake_zoom.leave(MEETING, "zu_alice")
    worker_turn()
    wait_for_status(first, "done")
    worker_turn()
    assert not Bot.objects.filter(previous_bot=first).exists() and len(fake_recall.bots) == 1


def test_a_bot_without_handoff_is_not_replaced(api_client, connection, both_in, alice_api, fake_zoom, fake_recall):
    first = launch_in_call(api_client, connection, alice_api, handoff=False)
    fake_zoom.leave(MEETING, "zu_alice")
    worker_turn()
    wait_for_status(first, "done")
    worker_turn()
    assert Bot.objects.count() == 1 and len(fake_recall.bots) == 1


def test_a_successor_recall_refuses_ends_launch_failed_with_an_event(
    api_client, connection, both_in, alice_api, fake_zoom, fake_recall
):
    EventEndpoint.objects.create(url="http://127.0.0.1:9/", secret=EventEndpoint.new_secret())
    first = launch_in_call(api_client, connection, alice_api)
    fake_recall.configure(bot_create_fail_next=[400])
    fake_zoom.leave(MEETING, "zu_alice")
    worker_turn()
    successor = Bot.objects.get(previous_bot=first)
    assert successor.status == "launch_failed" and len(fake_recall.bots) == 1
    events = [e.data for e in Event.objects.filter(type="bot.status_changed")]
    failed = [e["bot"]["previous_bot"] for e in events if e["status"]["code"] == "launch_failed"]
    assert failed == [str(first.public_id)]


def test_a_throttled_successor_is_queued_and_created_on_the_next_try(
    api_client, connection, both_in, alice_api, fake_zoom, fake_recall
):
    first = launch_in_call(api_client, connection, alice_api)
    fake_recall.configure(bot_create_fail_next=[429])
    fake_zoom.leave(MEETING, "zu_alice")
    worker_turn()  # the first try is throttled; its retry is a new message, which this turn also runs
    successor = wait_for_status(Bot.objects.get(previous_bot=first), "in_call_recording")
    assert successor.launch_attempts == 2 and len(fake_recall.bots) == 2


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"token_kinds": ["zak"], "obf_candidates": []}, "OBF"),
        ({"obf_candidates": []}, "obf_candidates"),
    ],
)
def test_handoff_needs_obf_and_candidates_a_400_naming_the_field(
    api_client,
    connection,
    bob,
    alice_api,
    extra,
    problem,  # noqa: F811
):
    body = {
        "meeting_url": f"https://zoom.us/j/{MEETING}",
        "connection": str(connection.public_id),
        "token_kinds": ["obf"],
        "handoff": True,
        **extra,
    }
    response = api_client.post("/api/bots/", body, format="json", **alice_api)
    assert response.status_code == 400 and problem in response.json()["handoff"][0], response.json()
    assert not Bot.objects.exists()


# --- the admin launcher and the launch page: the API's rules ---------------------------------

LAUNCHER = "/admin/recallbots/bot/add/"


def api_answer(api_client, user, body) -> dict:
    from accounts.models import ApiToken

    _, key = ApiToken.issue(user=user, name="same rules")
    response = api_client.post("/api/bots/", body, format="json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 400
    return response.json()


def test_the_admin_launcher_offers_start_wait_candidates_and_handoff_with_only_add_bot(
    client,
    api_client,
    connection,
    bob,
    meeting,
    fake_zoom,
    fake_recall,  # noqa: F811
):
    from tests.staff import staff_with

    staff = staff_with("recallbots.add_bot")
    ZoomConnection.objects.filter(pk=connection.pk).update(user=staff)  # the staff member's own Zoom
    client.force_login(staff)
    page = client.get(LAUNCHER).content.decode()
    for name in ("start", "wait_minutes", "obf_candidates", "handoff"):
        assert f'name="{name}"' in page, name
    form = {
        "user": staff.pk,
        "connection": connection.pk,
        "meeting_url": f"https://zoom.us/j/{MEETING}",
        "token_kinds": ["obf"],
        "bot_name": "Staff bot",
        "handoff": "on",
    }
    api_body = {
        "meeting_url": form["meeting_url"],
        "connection": str(connection.public_id),
        "token_kinds": ["obf"],
        "handoff": True,
    }
    refused = client.post(LAUNCHER, form)
    assert refused.status_code == 200 and not Bot.objects.exists()
    errors = refused.context["adminform"].form.errors
    assert errors["handoff"] == api_answer(api_client, staff, api_body)["handoff"]
    waited = client.post(LAUNCHER, {**form, "obf_candidates": "crm-bob", "start": "when_user_joins", "wait_minutes": 0})
    assert waited.status_code == 200 and not Bot.objects.exists()
    assert (
        waited.context["adminform"].form.errors["wait_minutes"]
        == api_answer(
            api_client,
            staff,
            {**api_body, "obf_candidates": ["crm-bob"], "start": "when_user_joins", "wait_minutes": 0},
        )["wait_minutes"]
    )
    not_opted_in = client.post(LAUNCHER, {**form, "obf_candidates": "crm-bob"}, follow=True)
    assert "has not allowed" in " ".join(str(m) for m in not_opted_in.context["messages"])
    assert not Bot.objects.exists() and not fake_recall.bots

    ZoomConnection.objects.filter(pk=bob.pk).update(allow_obf_for_others=True)
    fake_zoom.start_meeting(MEETING)
    worker_turn()
    launched = client.post(
        LAUNCHER, {**form, "obf_candidates": "crm-bob", "start": "when_user_joins", "wait_minutes": 5}
    )
    assert launched.status_code == 302, launched.context["adminform"].form.errors
    bot = Bot.objects.get()
    assert (bot.status, bot.handoff, bot.obf_candidates, bot.start) == (
        "waiting_for_user",
        True,
        [bob.pk],
        "when_user_joins",
    )
    assert fake_recall.bots == {}


def test_the_admin_launcher_keeps_the_launch_rule_for_candidates_too(client, connection, bob, fake_recall):  # noqa: F811
    from tests.staff import staff_with

    staff = staff_with("recallbots.add_bot")
    client.force_login(staff)
    form = {
        "user": staff.pk,
        "connection": connection.pk,  # Alice's: not the staff member's, and no launch_on_any_connection
        "meeting_url": f"https://zoom.us/j/{MEETING}",
        "token_kinds": ["obf"],
        "bot_name": "x",
        "obf_candidates": "crm-bob",
        "handoff": "on",
    }
    response = client.post(LAUNCHER, form)
    assert response.status_code == 200 and "connection" in response.context["adminform"].form.errors
    assert not Bot.objects.exists() and not fake_recall.bots


def test_the_launch_page_takes_handoff_with_the_apis_rules(client, connection, bob, meeting, fake_zoom):  # noqa: F811
    client.force_login(connection.user)
    assert 'name="handoff"' in client.get("/launch/").content.decode()
    form = {
        "meeting_url": f"https://zoom.us/j/{MEETING}",
        "connection": connection.pk,
        "token_kinds": ["obf"],
        "bot_name": "Notes",
        "start": "when_user_joins",
        "handoff": "on",
    }
    refused = client.post("/launch/", form)
    assert refused.status_code == 400 and "Hand-off needs someone to hand the bot to" in refused.content.decode()
    ZoomConnection.objects.filter(pk=bob.pk).update(allow_obf_for_others=True)
    fake_zoom.start_meeting(MEETING)
    worker_turn()
    assert client.post("/launch/", {**form, "obf_candidates": str(bob.public_id)}).status_code == 302
    bot = Bot.objects.get()
    assert (bot.handoff, bot.obf_candidates, bot.status) == (True, [bob.pk], "waiting_for_user")


def removed_with_no_one_else_in(api_client, connection, alice_api, fake_zoom) -> Bot:
    """Alice's bot in the call; Bob leaves, then Alice: Zoom removes the bot, and with no one else
    of the launch in, it is over: no successor."""
    first = launch_in_call(api_client, connection, alice_api)
    fake_zoom.leave(MEETING, "zu_bob")
    fake_zoom.leave(MEETING, "zu_alice")
    worker_turn()
    wait_for_status(first, "done")
    worker_turn()
    assert not Bot.objects.filter(previous_bot=first).exists()
    return first


def assert_a_later_leave_sends_no_bot(first: Bot, fake_zoom, fake_recall) -> None:
    """Bob and Alice join, Alice leaves: no successor of `first`, no second bot at Recall."""
    fake_zoom.join(MEETING, "zu_bob")
    fake_zoom.join(MEETING, "zu_alice")
    worker_turn()
    fake_zoom.leave(MEETING, "zu_alice")
    worker_turn()
    assert not Bot.objects.filter(previous_bot=first).exists() and len(fake_recall.bots) == 1


def test_a_leave_in_a_later_instance_of_the_meeting_does_not_revive_an_old_bots_hand_off(
    api_client, connection, both_in, alice_api, fake_zoom, fake_recall
):
    """A PMI or a recurring meeting keeps its number: the bot removed when Alice left, with no one
    else in, is over; her leave in the next instance of the meeting is not its hand-off."""
    first = removed_with_no_one_else_in(api_client, connection, alice_api, fake_zoom)
    fake_zoom.end_meeting(MEETING)
    worker_turn()

    fake_zoom.start_meeting(MEETING)  # the next instance, the same number
    assert_a_later_leave_sends_no_bot(first, fake_zoom, fake_recall)


def test_a_successor_still_queued_when_the_meeting_ends_is_never_sent(
    api_client, connection, both_in, alice_api, fake_zoom, fake_recall
):
    from recallbots.tasks import bot_create_at_recall

    EventEndpoint.objects.create(url="http://127.0.0.1:9/", secret=EventEndpoint.new_secret())
    first = launch_in_call(api_client, connection, alice_api)
    fake_recall.configure(bot_create_fail_next=[507], retry_after="60")  # Recall's pool is empty for a minute
    fake_zoom.leave(MEETING, "zu_alice")
    worker_turn()
    successor = Bot.objects.get(previous_bot=first)
    assert successor.status == "queued" and len(fake_recall.bots) == 1
    fake_zoom.end_meeting(MEETING)
    worker_turn()
    Bot.objects.filter(pk=successor.pk).update(launch_next_attempt_at=None)  # Recall's minute is over
    bot_create_at_recall.run(successor.pk)
    successor.refresh_from_db()
    assert successor.status == "meeting_ended" and successor.recall_id is None and successor.queued_payload == ""
    assert len(fake_recall.bots) == 1  # no bot sent into a meeting that is over
    events = [e.data for e in Event.objects.filter(type="bot.status_changed").order_by("pk")]
    assert [e["status"]["code"] for e in events if e["bot"]["id"] == str(successor.public_id)] == [
        "queued",
        "meeting_ended",
    ]


def test_a_successor_whose_create_is_answered_late_and_hidden_from_the_list_is_posted_once(
    api_client, connection, both_in, alice_api, fake_zoom, fake_recall, settings
):
    from datetime import timedelta

    from recallbots.tasks import bot_create_at_recall

    first = launch_in_call(api_client, connection, alice_api)
    settings.RECALL_HTTP_TIMEOUT = 1.0
    settings.RECALL_BOT_LIST_LAG = timedelta(seconds=20)
    # Recall creates the successor, answers after the client gave up, lists it 4 s later, and its
    # status webhooks do not reach the broker yet.
    fake_recall.configure(bot_create_answer_delay=2.0, bot_list_lag_seconds=4.0, status_webhook_url="")
    fake_zoom.leave(MEETING, "zu_alice")
    worker_turn()
    successor = Bot.objects.get(previous_bot=first)
    assert successor.status == "queued" and successor.launch_ambiguous_at is not None
    assert len(fake_recall.bots) == 2
    Bot.objects.filter(pk=successor.pk).update(launch_next_attempt_at=None)
    bot_create_at_recall.run(successor.pk)  # the list is empty and may still lag: no second POST
    assert len(fake_recall.bots) == 2
    deadline = time.monotonic() + 15
    while Bot.objects.get(pk=successor.pk).recall_id is None:
        assert time.monotonic() < deadline, "the successor was never resolved"
        time.sleep(0.5)
        Bot.objects.filter(pk=successor.pk).update(launch_next_attempt_at=None)
        bot_create_at_recall.run(successor.pk)
    successor.refresh_from_db()
    assert successor.recall_id in fake_recall.bots and len(fake_recall.bots) == 2
    assert fake_recall.bots[successor.recall_id]["metadata"]["broker_bot_id"] == str(successor.public_id)


def test_a_bot_removed_long_ago_with_no_one_else_in_is_not_handed_off_by_a_later_leave(
    api_client, connection, both_in, alice_api, fake_zoom, fake_recall
):
    """The hand-off is for the leave that removed the bot: once beat's catch-up window is over,
    Alice's later leave (Bob back in by then) sends no bot for a launch that ended long ago."""
    from datetime import timedelta

    from django.utils import timezone

    from recallbots.models import BotStatusChange

    first = removed_with_no_one_else_in(api_client, connection, alice_api, fake_zoom)
    long_ago = timezone.now() - handoff.SWEEP_WINDOW - timedelta(minutes=1)
    BotStatusChange.objects.filter(bot=first).update(received_at=long_ago)  # the removal is that old

    assert_a_later_leave_sends_no_bot(first, fake_zoom, fake_recall)
