"""Hand-off end to end (issue #24's target): gunicorn, a Celery worker per queue, beat, PostgreSQL,
Redis and the fakes as their own processes. The fake Zoom sends its signed participant events to
the broker's intake; the fake Recall lets an OBF bot in only while the token's user is in the
meeting, removes it the moment that user leaves (as Zoom does) and reports it to the broker's
status webhook. Every assertion is an outcome, a count or an order, never a duration."""

import time

import pytest
import requests

from recallbots.models import Bot
from zoomauth.models import MeetingPresence

from .conftest import wait_for
from .test_presence import Backend, all_processed, connect, started
from .test_presence import world as world  # noqa: F401 - the same world: app, fakes, the backend's API key

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MEETING = "87400000001"
# The OBF user leaves 30 s into the call; scaled down here.
IN_CALL_SECONDS = 3.0


def api_bot(broker, api: dict, public_id) -> dict:
    response = requests.get(broker.url + f"/api/bots/{public_id}/", headers=api, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def obf_minted_for(bot: dict) -> list[str]:
    return [f["connection"] for f in bot["token_fetches"] if f["kind"] == "obf" and f["status"] == 200]


def codes_at_recall(fake_recall, recall_id: str) -> list[str]:
    return [change["code"] for change in fake_recall.bots[recall_id]["status_changes"]]


def overlapping(spans: list[list[float | None]]) -> int:
    """Pairs of call spans ([in, out], out None while still in) that overlap."""
    closed = [(start, end if end is not None else float("inf")) for start, end in spans]
    return sum(1 for i, a in enumerate(closed) for b in closed[i + 1 :] if a[0] < b[1] and b[0] < a[1])


def test_the_obf_user_leaving_mid_call_hands_the_bot_to_the_candidate_still_in(world):  # noqa: F811
    from webhooks.models import EventEndpoint

    broker, fake_zoom, fake_recall, app, api = world
    backend = Backend().start()
    try:
        endpoint = EventEndpoint.objects.create(url=backend.base_url + "/hooks", secret=EventEndpoint.new_secret())
        # A bot stays in the call until Zoom removes it (its OBF user left, the meeting ended).
        fake_recall.configure(call_seconds=120)
        alice = connect(broker, fake_zoom, api, "cust-h-alice", "zu_h_alice")
        bob = connect(broker, fake_zoom, api, "cust-h-bob", "zu_h_bob")
        # Bob's choice, relayed by the customer's backend (an API user with change_zoomconnection).
        opted_in = requests.patch(
            broker.url + f"/api/connections/{bob.public_id}/",
            json={"allow_obf_for_others": True},
            headers=api,
            timeout=10,
        )
        assert opted_in.status_code == 200 and opted_in.json()["allow_obf_for_others"] is True, opted_in.text
        started(fake_zoom, [MEETING])

        launched = requests.post(
            broker.url + "/api/bots/",
            json={
                "meeting_url": f"https://zoom.us/j/{MEETING}",
                "external_user_id": "cust-h-alice",
                "token_kinds": ["obf"],
                "obf_candidates": ["cust-h-bob"],
                "handoff": True,
                "start": "when_user_joins",
                "wait_minutes": 10,
            },
            headers=api,
            timeout=30,
        )
        assert launched.status_code == 202, launched.text
        assert (launched.json()["status"], launched.json()["presence"]) == ("waiting_for_user", "visible")
        first = Bot.objects.get(public_id=launched.json()["id"])

        fake_zoom.join(MEETING, alice.zoom_user_id)  # the launching user joins: her bot goes in
        first = wait_for(lambda: Bot.objects.filter(pk=first.pk, status="in_call_recording").first())
        fake_zoom.join(MEETING, bob.zoom_user_id)  # the candidate joins later
        wait_for(lambda: MeetingPresence.objects.present().filter(connection=bob).exists())
        wait_for(all_processed)
        time.sleep(IN_CALL_SECONDS)  # the bot is in the call a while (no assertion hangs on it)
        assert not Bot.objects.filter(previous_bot=first).exists()  # no hand-off while she is in
        assert len(fake_recall.bots) == 1

        fake_zoom.leave(MEETING, alice.zoom_user_id)  # Zoom removes the bot that carries her token
        successor = wait_for(lambda: Bot.objects.filter(previous_bot=first).first())
        successor = wait_for(lambda: Bot.objects.filter(pk=successor.pk, status="in_call_recording").first())
        wait_for(lambda: Bot.objects.filter(pk=first.pk, status="done").exists())
        wait_for(all_processed)
        wanted = {"queued", "in_call_recording"}

        def successor_events():
            mine = str(successor.public_id)
            events = [e for e in backend.bot_events(endpoint.secret) if e["data"]["bot"]["id"] == mine]
            return wanted <= {e["data"]["status"]["code"] for e in events} and events

        events_of_successor = wait_for(successor_events)
        events = backend.bot_events(endpoint.secret)
        state = fake_recall.state()
    finally:
        backend.stop()

    # The API links the two both ways; the first carried Alice's OBF, the successor Bob's.
    first_api, successor_api = api_bot(broker, api, first.public_id), api_bot(broker, api, successor.public_id)
    assert (first_api["previous_bot"], first_api["next_bot"]) == (None, str(successor.public_id))
    assert (successor_api["previous_bot"], successor_api["next_bot"]) == (str(first.public_id), None)
    assert obf_minted_for(first_api) == [str(alice.public_id)]
    assert obf_minted_for(successor_api) == [str(bob.public_id)]
    assert successor_api["meeting_id"] == MEETING and successor_api["status"] == "in_call_recording"
    assert [c["code"] for c in first_api["status_changes"]][-2:] == ["call_ended", "done"]
    assert first_api["status_changes"][-2]["sub_code"] == "authorized_user_left_meeting"

    # At the fake Recall: two bots of the launch, never in the call at once, no host notified.
    at_recall = {bot["id"]: bot for bot in state["bots"]}
    assert set(at_recall) == {first.recall_id, successor.recall_id}
    assert at_recall[successor.recall_id]["metadata"]["broker_bot_id"] == str(successor.public_id)
    first_span, successor_span = at_recall[first.recall_id]["in_call"], at_recall[successor.recall_id]["in_call"]
    assert first_span[1] is not None and first_span[1] <= successor_span[0]
    assert successor_span[1] is None  # Bob is still in: so is his bot
    assert overlapping([first_span, successor_span]) == 0
    assert "in_waiting_room" not in codes_at_recall(fake_recall, successor.recall_id)
    assert state["host_notified"] == {}

    # The backend heard of the successor with its link, from its queued event on.
    codes = [e["data"]["status"]["code"] for e in events_of_successor]
    assert codes[0] == "queued" and "in_call_recording" in codes
    assert all(e["data"]["bot"]["previous_bot"] == str(first.public_id) for e in events_of_successor)
    of_first = [e["data"]["bot"] for e in events if e["data"]["bot"]["id"] == str(first.public_id)]
    assert of_first and all(bot["previous_bot"] is None for bot in of_first)
    # Recall's removal may reach the broker before or after the successor exists: its link, once made.
    assert {bot["next_bot"] for bot in of_first} <= {None, str(successor.public_id)}
    assert Bot.objects.count() == 2
