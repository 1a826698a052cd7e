"""Bots launched `when_user_joins`: the fake Zoom sends its signed meeting events to the broker's
intake over real HTTP, a worker's turn runs the queued tasks, and the fake Recall lets an OBF bot
in only while its user is in the meeting (each refused try notifies the host)."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from recallbots.models import Bot
from recallbots.tasks import bot_wait_expire
from tests.conftest import WEBHOOK_SECRET, run_queued_tasks
from tests.recallbots.test_bots import wait_for_status
from webhooks.models import Event, EventEndpoint

pytestmark = pytest.mark.django_db(transaction=True)

MEETING = "85066554433"
# The default queue holds the waits' own deadline tasks (with their countdown): run by hand below.
QUEUES = ("zoom-events", "recall", "customer-events")


@pytest.fixture(autouse=True)
def _live(live_broker, settings):
    settings.WEBHOOK_ENQUEUE_BATCH_SECONDS = 0  # each event on the queue before Zoom's 200
    from brokerproject.redis_client import shared_redis

    shared_redis().delete(*QUEUES, "celery")  # nothing left over from another test
    return live_broker


@pytest.fixture
def meeting(fake_zoom, zoom_app, live_broker):
    fake_zoom.add_meeting(id=MEETING, host_id="zu_alice")
    fake_zoom.send_events_to(url=live_broker.url + f"/webhooks/zoom/{zoom_app.public_id}/", secret=WEBHOOK_SECRET)
    return MEETING


@pytest.fixture
def backend(connection):
    _, key = ApiToken.issue(user=connection.user, name="backend")
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def worker_turn() -> int:
    """Run what the workers would, until nothing is left (a join enqueues a launch)."""
    ran = 0
    for _ in range(5):
        n = run_queued_tasks(*QUEUES)
        ran += n
        if not n:
            break
    return ran


def wait_task() -> dict:
    import base64
    import json

    from brokerproject.redis_client import shared_redis

    for raw in shared_redis().lrange("celery", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "recallbots.tasks.bot_wait_expire":
            args = json.loads(base64.b64decode(message["body"]))[0]
            return {"args": args, "eta": message["headers"].get("eta")}
    raise AssertionError("no wait task queued")


def launch(api_client, connection, headers, **extra):
    body = {
        "meeting_url": f"https://zoom.us/j/{MEETING}",
        "connection": str(connection.public_id),
        "token_kinds": ["obf"],
        **extra,
    }
    return api_client.post("/api/bots/", body, format="json", **headers)


def test_the_bot_waits_and_is_created_at_recall_when_its_user_joins(
    api_client, connection, meeting, backend, fake_zoom, fake_recall
):
    fake_zoom.start_meeting(MEETING)  # the host is in: the broker now sees the meeting
    worker_turn()
    response = launch(api_client, connection, backend, start="when_user_joins", wait_minutes=10)
    assert response.status_code == 202, response.json()
    assert (response.json()["status"], response.json()["presence"]) == ("waiting_for_user", "visible")
    worker_turn()
    assert fake_recall.bots == {}  # nothing at Recall while the user is away
    fake_zoom.join(MEETING, "zu_bob")  # someone else: still waiting
    worker_turn()
    assert fake_recall.bots == {}
    fake_zoom.join(MEETING, "zu_alice")
    worker_turn()
    bot = Bot.objects.get(public_id=response.json()["id"])
    assert bot.recall_id in fake_recall.bots
    wait_for_status(bot, "done")
    codes = list(bot.status_changes.values_list("code", flat=True))
    assert "in_waiting_room" not in codes and "in_call_recording" in codes
    assert fake_recall.host_notified.get(MEETING, 0) == 0


def test_a_bot_sent_at_once_before_its_user_notifies_the_host_each_try(
    api_client, connection, meeting, backend, fake_zoom, fake_recall
):
    """What the waiting avoids, as the fake Recall plays it (start "now", the default)."""
    response = launch(api_client, connection, backend)
    assert response.status_code == 201
    bot = wait_for_status(Bot.objects.get(public_id=response.json()["id"]), "in_waiting_room")
    time.sleep(0.6)
    fake_zoom.join(MEETING, "zu_alice")
    wait_for_status(bot, "done")
    assert fake_recall.host_notified[MEETING] >= 2


def test_a_user_already_in_the_meeting_gets_the_bot_at_once(
    api_client, connection, meeting, backend, fake_zoom, fake_recall
):
    fake_zoom.join(MEETING, "zu_alice")
    worker_turn()
    response = launch(api_client, connection, backend, start="when_user_joins")
    assert response.status_code == 201, response.json()
    assert response.json()["presence"] == "visible" and response.json()["recall_id"]
    wait_for_status(Bot.objects.get(public_id=response.json()["id"]), "done")
    assert fake_recall.host_notified.get(MEETING, 0) == 0


def test_a_user_who_never_joins_ends_user_never_joined_with_an_event_and_no_bot_at_recall(
    api_client, connection, meeting, backend, fake_zoom, fake_recall
):
    EventEndpoint.objects.create(url="http://127.0.0.1:9/", secret=EventEndpoint.new_secret())
    fake_zoom.start_meeting(MEETING)
    worker_turn()
    response = launch(api_client, connection, backend, start="when_user_joins", wait_minutes=1)
    assert response.status_code == 202
    bot = Bot.objects.get(public_id=response.json()["id"])
    assert timedelta(seconds=50) < bot.wait_until - timezone.now() <= timedelta(minutes=1)
    worker_turn()
    deadline = wait_task()
    assert deadline["args"] == [bot.pk] and deadline["eta"]  # the wait's end, queued with its countdown
    bot_wait_expire.run(bot.pk)  # run early (as a redelivery would): it waits on
    assert Bot.objects.get(pk=bot.pk).status == "waiting_for_user"
    Bot.objects.filter(pk=bot.pk).update(wait_until=timezone.now() - timedelta(seconds=1))  # the minute passed
    bot_wait_expire.run(bot.pk)
    worker_turn()
    bot.refresh_from_db()
    assert bot.status == "user_never_joined" and bot.recall_id is None and bot.is_final
    assert fake_recall.bots == {}
    event = Event.objects.get(type="bot.status_changed")
    assert event.data["status"]["code"] == "user_never_joined" and event.data["bot"]["id"] == str(bot.public_id)
    fake_zoom.join(MEETING, "zu_alice")  # too late: nothing happens
    worker_turn()
    assert fake_recall.bots == {}


def test_the_expiry_sweep_ends_waits_whose_task_was_lost(api_client, connection, meeting, backend, fake_zoom):
    from recallbots.tasks import bots_waiting_expired

    fake_zoom.start_meeting(MEETING)
    worker_turn()
    response = launch(api_client, connection, backend, start="when_user_joins")
    from brokerproject.redis_client import shared_redis

    shared_redis().delete("celery")  # the wait's task is lost
    assert bots_waiting_expired.run() == 0
    Bot.objects.filter(public_id=response.json()["id"]).update(wait_until=timezone.now())
    assert bots_waiting_expired.run() == 1
    assert Bot.objects.get(public_id=response.json()["id"]).status == "user_never_joined"


def test_a_meeting_that_ends_first_ends_the_wait_meeting_ended(
    api_client, connection, meeting, backend, fake_zoom, fake_recall
):
    EventEndpoint.objects.create(url="http://127.0.0.1:9/", secret=EventEndpoint.new_secret())
    fake_zoom.start_meeting(MEETING)
    worker_turn()
    response = launch(api_client, connection, backend, start="when_user_joins")
    fake_zoom.end_meeting(MEETING)
    worker_turn()
    bot = Bot.objects.get(public_id=response.json()["id"])
    assert bot.status == "meeting_ended" and fake_recall.bots == {}
    assert Event.objects.get(type="bot.status_changed").data["status"]["code"] == "meeting_ended"


def test_a_meeting_the_broker_cannot_see_is_launched_at_once(api_client, connection, backend, fake_zoom, fake_recall):
    fake_zoom.add_meeting(id="85011112222", host_id="zu_bob")  # Bob has not connected: no events, no host
    body = {
        "meeting_url": "https://zoom.us/j/85011112222",
        "connection": str(connection.public_id),
        "token_kinds": ["obf"],
        "start": "when_user_joins",
    }
    response = api_client.post("/api/bots/", body, format="json", **backend)
    assert response.status_code == 201, response.json()
    assert response.json()["presence"] == "not_visible" and response.json()["recall_id"] in fake_recall.bots


IN_AN_HOUR = (timezone.now() + timedelta(hours=1)).isoformat()  # within the join_at bounds


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"start": "later"}, "start"),
        ({"start": "when_user_joins", "wait_minutes": 0}, "wait_minutes"),
        ({"start": "when_user_joins", "wait_minutes": 1441}, "wait_minutes"),
        ({"start": "when_user_joins", "wait_minutes": "soon"}, "wait_minutes"),
        ({"start": "when_user_joins", "join_at": IN_AN_HOUR}, "start"),
    ],
)
def test_bad_start_or_wait_is_a_400_naming_the_field(api_client, connection, backend, extra, field):
    response = launch(api_client, connection, backend, **extra)
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not Bot.objects.exists()


def test_the_fake_recall_removes_an_obf_bot_when_its_user_leaves(
    api_client, connection, meeting, backend, fake_zoom, fake_recall
):
    fake_recall.configure(call_seconds=30)
    fake_zoom.join(MEETING, "zu_alice")
    worker_turn()
    response = launch(api_client, connection, backend, start="when_user_joins")
    bot = wait_for_status(Bot.objects.get(public_id=response.json()["id"]), "in_call_recording")
    fake_zoom.leave(MEETING, "zu_alice")
    bot = wait_for_status(bot, "done")
    assert bot.status_changes.get(code="call_ended").sub_code == "authorized_user_left_meeting"


def test_the_launch_page_accepts_when_user_joins(client, connection, meeting, fake_zoom, fake_recall):
    fake_zoom.start_meeting(MEETING)
    worker_turn()
    client.force_login(connection.user)
    assert "when_user_joins" in client.get("/launch/").content.decode()
    response = client.post(
        "/launch/",
        {
            "meeting_url": f"https://zoom.us/j/{MEETING}",
            "connection": connection.pk,
            "token_kinds": ["obf"],
            "bot_name": "Notes",
            "start": "when_user_joins",
            "wait_minutes": 5,
        },
    )
    assert response.status_code == 302
    bot = Bot.objects.get()
    assert bot.status == "waiting_for_user" and fake_recall.bots == {}
    fake_zoom.join(MEETING, "zu_alice")
    worker_turn()
    assert Bot.objects.get().recall_id in fake_recall.bots
    wait_for_status(bot, "done")
