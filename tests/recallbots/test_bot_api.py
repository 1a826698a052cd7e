"""POST /api/bots/ for the customer's backend: external user ids, Idempotency-Key, and a Recall
that throttles without holding the request."""

import pytest
from django.db import connection as db_connection

from accounts.models import ApiToken
from recallbots.models import Bot
from recallbots.services import bot_create_at_recall

MEETING_URL = "https://zoom.us/j/85012345678"


def launch(api_client, backend, **extra):
    body = {"meeting_url": MEETING_URL, "external_user_id": "cust-7", "token_kinds": ["obf"]}
    return api_client.post("/api/bots/", body, format="json", **backend, **extra)


def test_a_bot_for_an_external_user_uses_their_connection(api_client, backend, end_user_connection, fake_recall):
    response = launch(api_client, backend)
    assert response.status_code == 201, response.content
    bot = Bot.objects.get(public_id=response.json()["id"])
    assert bot.connection == end_user_connection
    obf_url = fake_recall.bots[bot.recall_id]["_zoom"]["obf_token_url"]
    assert "/recall/callbacks/obf/?grant=" in obf_url  # the bot's own credential...
    assert end_user_connection.callback_secret not in obf_url  # ...never the connection's secret


def test_an_external_user_without_a_connection_is_a_400(api_client, backend, end_user_connection, fake_recall):
    body = {"meeting_url": MEETING_URL, "external_user_id": "nobody", "token_kinds": ["obf"]}
    response = api_client.post("/api/bots/", body, format="json", **backend)
    assert response.status_code == 400
    assert "connect link" in response.json()["external_user_id"][0]
    assert not Bot.objects.exists()


def test_the_same_idempotency_key_returns_the_first_answer_and_never_a_second_bot(
    api_client, backend, end_user_connection, fake_recall
):
    first = launch(api_client, backend, HTTP_IDEMPOTENCY_KEY="order-1")
    again = launch(api_client, backend, HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    assert Bot.objects.count() == 1 and len(fake_recall.bots) == 1
    other = launch(api_client, backend, HTTP_IDEMPOTENCY_KEY="order-2")
    assert other.json()["id"] != first.json()["id"]


def test_bad_input_does_not_use_up_the_idempotency_key(api_client, backend, end_user_connection, fake_recall):
    bad = api_client.post(
        "/api/bots/", {"meeting_url": "not a link"}, format="json", HTTP_IDEMPOTENCY_KEY="k", **backend
    )
    assert bad.status_code == 400
    assert launch(api_client, backend, HTTP_IDEMPOTENCY_KEY="k").status_code == 201


def test_a_throttled_launch_is_queued_then_created_by_a_worker(api_client, backend, end_user_connection, fake_recall):
    fake_recall.configure(fail_next=[429, 429, 429], retry_after="30")
    response = launch(api_client, backend)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"
    bot = Bot.objects.get()
    assert bot.recall_id is None and bot.queued_payload  # kept, encrypted, for the worker
    with db_connection.cursor() as cursor:  # what is stored is ciphertext: the URLs carry the secret
        cursor.execute("SELECT queued_payload FROM recallbots_bot")
        assert end_user_connection.callback_secret not in cursor.fetchone()[0]
    fake_recall.configure(fail_next=[])
    assert bot_create_at_recall(bot_id=bot.pk) is None  # too early: Recall asked for 30 s
    assert bot.launch_next_attempt_at is not None
    Bot.objects.update(launch_next_attempt_at=None)  # the 30 s have passed
    assert bot_create_at_recall(bot_id=bot.pk) is None  # what the queued task runs
    bot.refresh_from_db()
    assert bot.recall_id in fake_recall.bots and bot.status != "queued" and bot.queued_payload == ""


def test_a_failed_bot_explains_itself_with_its_token_fetches(api_client, client, staff, connection, fake_zoom):
    from recallbots.services import bot_record_status

    fake_zoom.add_meeting(id="86000000001", host_id="zu_bob")
    bot = Bot.objects.create(
        user=staff,
        connection=connection,
        meeting_url="https://zoom.us/j/86000000001",
        meeting_id="86000000001",
        token_kinds=["join_token"],
        recall_id="rb_explain",
    )
    client.logout()
    url = connection.callback_url("join-token", meeting_id="86000000001").replace("https://broker.example.test", "")
    assert client.get(url).status_code == 409  # what Recall's bot got: alice is not the host
    bot_record_status(
        recall_bot_id="rb_explain", code="fatal", sub_code="zoom_invalid_join_token", occurred_at=None, webhook_id="w"
    )
    _, raw = ApiToken.issue(user=staff, name="backend")
    body = api_client.get(f"/api/bots/{bot.public_id}/", HTTP_AUTHORIZATION=f"Bearer {raw}").json()
    (fetch,) = body["token_fetches"]
    assert (fetch["kind"], fetch["status"], fetch["zoom_calls"]) == ("join-token", 409, 1)
    assert "host" in fetch["reason"] and connection.callback_secret not in str(body)
    assert body["sub_code"] == "zoom_invalid_join_token" and body["fatal_hint"]
    client.force_login(staff)
    page = client.get(f"/bots/{bot.public_id}/").content.decode()
    assert "join-token fetch → 409" in page and "zoom_invalid_join_token" in page
    assert 'http-equiv="refresh"' not in page  # final: the page stops refreshing
    admin = client.get(f"/admin/recallbots/bot/{bot.pk}/change/").content.decode()
    assert "Token fetches by Recall" in admin and "<td>409</td>" in admin


def test_a_queued_launch_whose_message_was_lost_is_picked_up_by_beat(
    api_client, backend, end_user_connection, fake_recall
):
    from datetime import timedelta

    from django.utils import timezone

    from brokerproject.redis_client import shared_redis
    from recallbots import tasks

    fake_recall.configure(fail_next=[429, 429, 429], retry_after="30")
    assert launch(api_client, backend).status_code == 202
    shared_redis().delete("recall")  # the message is gone (the broker was away, or lost it)
    assert tasks.bots_queued_due.run() == 0  # not overdue: its own message may still come
    Bot.objects.update(launch_next_attempt_at=timezone.now() - timedelta(minutes=5))
    assert tasks.bots_queued_due.run() == 1
    assert shared_redis().llen("recall") == 1  # enqueued again, on the recall queue
    fake_recall.configure(fail_next=[])
    tasks.bot_create_at_recall.run(Bot.objects.get().pk)
    assert Bot.objects.get().recall_id in fake_recall.bots
    assert tasks.bots_queued_due.run() == 0  # created: nothing left to pick up


def bot_posts(fake_recall) -> int:
    return sum(1 for r in fake_recall.requests_log if r["method"] == "POST" and r["path"].endswith("/v1/bot/"))


def test_recall_answering_507_costs_one_post_per_try_and_no_wait(api_client, backend, end_user_connection, fake_recall):
    """The pool is empty for a while: each try is one POST, and the next try is a new message
    after Retry-After, not a worker asleep; a second message for the same launch does nothing."""
    fake_recall.configure(bot_create_fail_next=[507] * 5, retry_after="5")
    assert launch(api_client, backend).status_code == 202
    bot = Bot.objects.get()
    assert bot.status == Bot.Status.QUEUED
    posts = bot_posts(fake_recall)
    Bot.objects.update(launch_next_attempt_at=None)
    assert bot_create_at_recall(bot_id=bot.pk) == 5.0  # Recall's Retry-After, for the caller to schedule
    assert bot_posts(fake_recall) == posts + 1
    assert bot_create_at_recall(bot_id=bot.pk) is None  # claimed until then: a duplicate message is a no-op
    assert bot_posts(fake_recall) == posts + 1
    fake_recall.configure(bot_create_fail_next=[])
    Bot.objects.update(launch_next_attempt_at=None)
    assert bot_create_at_recall(bot_id=bot.pk) is None
    bot.refresh_from_db()
    assert bot.status != Bot.Status.QUEUED and bot.recall_id in fake_recall.bots
    assert len(fake_recall.bots) == 1


@pytest.mark.parametrize("fault", [{"bot_create_answer_delay": 2.5}, {"bot_create_drop_next": 1}])
def test_a_create_recall_did_but_answered_late_or_never_is_found_not_repeated(
    api_client, backend, end_user_connection, fake_recall, settings, fault
):
    settings.RECALL_HTTP_TIMEOUT = 1.0
    fake_recall.configure(**fault)
    response = launch(api_client, backend)
    assert response.status_code == 201, response.content
    bot = Bot.objects.get()
    assert len(fake_recall.bots) == 1  # exactly one bot at Recall
    assert bot.recall_id in fake_recall.bots and bot.launch_outcome_unknown
    assert fake_recall.bots[bot.recall_id]["metadata"]["broker_bot_id"] == str(bot.public_id)
    assert bot_posts(fake_recall) == 1


def test_a_queued_launch_after_an_ambiguous_failure_looks_before_posting_again(
    api_client, backend, end_user_connection, fake_recall, settings
):
    from datetime import timedelta

    settings.RECALL_HTTP_TIMEOUT = 1.0
    settings.RECALL_BOT_LIST_LAG = timedelta(0)  # the list is believed at once (its lag: test_launch_resolution)
    fake_recall.configure(bot_create_fail_next=[504], retry_after="")  # a gateway: did Recall create it?
    assert launch(api_client, backend).status_code == 202
    bot = Bot.objects.get()
    assert bot.launch_outcome_unknown and not fake_recall.bots  # looked, found nothing: queued
    fake_recall.configure(bot_create_answer_delay=2.5)  # the next POST creates it, answers too late
    Bot.objects.update(launch_next_attempt_at=None)
    assert bot_create_at_recall(bot_id=bot.pk) is None  # found by its metadata right after the timeout
    bot.refresh_from_db()
    assert bot.recall_id in fake_recall.bots and len(fake_recall.bots) == 1


@pytest.mark.parametrize(
    "join_at",
    ["9999-12-31T23:59:59Z", "2000-01-01T00:00:00Z", "far-future"],
)
def test_a_join_at_out_of_bounds_is_a_400_naming_join_at(
    api_client, backend, end_user_connection, fake_recall, settings, join_at
):
    from datetime import timedelta

    from django.utils import timezone

    if join_at == "far-future":
        join_at = (timezone.now() + settings.BOT_JOIN_AT_MAX_AHEAD + timedelta(hours=1)).isoformat()
    body = {"meeting_url": MEETING_URL, "external_user_id": "cust-7", "token_kinds": ["obf"], "join_at": join_at}
    response = api_client.post("/api/bots/", body, format="json", **backend)
    assert response.status_code == 400, response.content
    assert "join_at" in response.json()
    assert not Bot.objects.exists() and not fake_recall.bots


def test_a_join_at_within_bounds_is_launched(api_client, backend, end_user_connection, fake_recall, settings):
    from datetime import timedelta

    from django.utils import timezone

    join_at = timezone.now() + settings.BOT_JOIN_AT_MAX_AHEAD - timedelta(hours=1)
    body = {"meeting_url": MEETING_URL, "external_user_id": "cust-7", "token_kinds": ["obf"]}
    response = api_client.post("/api/bots/", {**body, "join_at": join_at.isoformat()}, format="json", **backend)
    assert response.status_code == 201, response.content


def test_every_door_refuses_a_join_at_out_of_bounds(end_user_connection, fake_recall):
    """The admin's add form and the page reach bot_launch without the API's serializer."""
    from datetime import UTC, datetime

    from recallbots.services import LaunchError, LaunchRequest, bot_launch

    request = LaunchRequest(
        user=end_user_connection.user,
        meeting_url=MEETING_URL,
        token_kinds=("obf",),
        connection=end_user_connection,
        join_at=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    )
    with pytest.raises(LaunchError, match="join_at is too far ahead"):
        bot_launch(request=request)
    assert not Bot.objects.exists()
