"""Never two bots per launch: an ambiguous create is resolved by Recall's list (believed only
once its lag is over) or by the bot's own status webhook; a second Recall bot for one launch is
recorded, linked and shown, never dropped. Over real HTTP against the fake Recall (its lag scaled
from the issue's 60 s)."""

import time
from datetime import timedelta

import requests

from recallbots import tasks
from recallbots.models import Bot, BotStatusChange
from tests.recallbots.test_bot_api import MEETING_URL, launch
from tests.staff import staff_with


def bot_posts(fake_recall) -> int:
    return sum(1 for r in fake_recall.requests_log if r["method"] == "POST" and r["path"].endswith("/v1/bot/"))


def wait_for(predicate, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def listed(fake_recall, bot: Bot) -> bool:
    return bool(
        requests.get(
            f"{fake_recall.base_url}/us-east-1/api/v1/bot/",
            params={"metadata__broker_bot_id": str(bot.public_id)},
            headers={"Authorization": "Token test-recall-key"},
            timeout=5,
        ).json()["results"]
    )


def the_retry_is_due() -> None:
    """The queued try's countdown has passed (the old code re-POSTed 5 s after the timeout): a
    worker runs it."""
    Bot.objects.update(launch_next_attempt_at=None)
    tasks.bot_create_at_recall.run(Bot.objects.get(duplicate_of=None).pk)


def test_a_create_answered_after_the_timeout_and_hidden_from_the_list_is_never_posted_twice(
    api_client, backend, end_user_connection, fake_recall, live_broker, settings
):
    settings.RECALL_HTTP_TIMEOUT = 1.0
    settings.RECALL_BOT_LIST_LAG = timedelta(seconds=20)  # the lag setting, scaled with the fake's lag
    # Recall creates the bot, answers after the client gave up, lists it only 4 s later, and its
    # first status webhooks do not reach the broker (they are retried later).
    fake_recall.configure(bot_create_answer_delay=2.0, bot_list_lag_seconds=4.0, status_webhook_url="")
    response = launch(api_client, backend)
    assert response.status_code == 202, response.content
    bot = Bot.objects.get()
    assert bot.status == Bot.Status.QUEUED and bot.launch_ambiguous_at is not None and bot.recall_id is None
    assert len(fake_recall.bots) == 1 and bot_posts(fake_recall) == 1

    the_retry_is_due()  # the list is still empty, and may still lag: no second POST
    assert bot_posts(fake_recall) == 1 and len(fake_recall.bots) == 1
    bot.refresh_from_db()
    assert bot.status == Bot.Status.QUEUED and bot.launch_attempts == 1

    wait_for(lambda: listed(fake_recall, bot), timeout=15)
    the_retry_is_due()  # the list shows it now: the launch takes its id
    bot.refresh_from_db()
    (recall_id,) = fake_recall.bots
    assert bot.recall_id == recall_id and bot.status != Bot.Status.QUEUED and bot.queued_payload == ""
    assert bot_posts(fake_recall) == 1 and len(fake_recall.bots) == 1

    fake_recall.configure(status_webhook_url=live_broker.url + "/recall/webhooks/bot-status/")
    wait_for(lambda: fake_recall.bots[recall_id]["status_changes"], timeout=10)
    fake_recall.redeliver(recall_id)  # Recall retries the webhooks the broker missed
    bot.refresh_from_db()
    codes = [change["code"] for change in fake_recall.bots[recall_id]["status_changes"]]
    assert bot.status == codes[-1] and list(bot.status_changes.values_list("code", flat=True)) == codes
    assert not Bot.objects.filter(duplicate_of__isnull=False).exists()


def test_once_the_lag_is_over_an_empty_list_means_no_bot_and_the_launch_is_posted_again(
    api_client, backend, end_user_connection, fake_recall, settings
):
    settings.RECALL_BOT_LIST_LAG = timedelta(seconds=1)
    fake_recall.configure(bot_create_fail_next=[504], retry_after="")  # a gateway failed; Recall made nothing
    assert launch(api_client, backend).status_code == 202
    bot = Bot.objects.get()
    wait_for(lambda: bot.list_lag_left(lag=settings.RECALL_BOT_LIST_LAG) == 0, timeout=5)
    the_retry_is_due()
    bot.refresh_from_db()
    assert bot.recall_id in fake_recall.bots and len(fake_recall.bots) == 1 and bot_posts(fake_recall) == 2


def test_the_first_bots_status_webhook_resolves_the_launch_before_any_second_post(
    api_client, backend, end_user_connection, fake_recall, live_broker, settings
):
    settings.RECALL_HTTP_TIMEOUT = 1.0
    # The 60 s of list lag; the bot's first status comes 3 s after its create.
    fake_recall.configure(bot_create_answer_delay=2.0, bot_list_lag_seconds=60.0, step_seconds=3.0)
    assert launch(api_client, backend).status_code == 202
    assert Bot.objects.get().recall_id is None
    (recall_id,) = fake_recall.bots
    wait_for(lambda: Bot.objects.filter(recall_id=recall_id).exists(), timeout=10)  # its webhook named the launch
    the_retry_is_due()
    bot = Bot.objects.get()
    assert bot.recall_id == recall_id and bot.status != Bot.Status.QUEUED
    assert bot_posts(fake_recall) == 1 and len(fake_recall.bots) == 1


def test_a_second_recall_bot_naming_the_launch_is_recorded_linked_and_shown_to_staff(
    api_client, backend, client, end_user_connection, fake_recall, live_broker
):
    assert launch(api_client, backend).status_code == 201
    first = Bot.objects.get()
    # A second bot at Recall whose metadata names the same launch (what an ambiguous create
    # repeated would have made): its status webhooks reach the broker.
    second = requests.post(
        f"{fake_recall.base_url}/us-east-1/api/v1/bot/",
        json={"meeting_url": MEETING_URL, "metadata": {"broker_bot_id": str(first.public_id)}},
        headers={"Authorization": "Token test-recall-key"},
        timeout=5,
    ).json()["id"]
    wait_for(lambda: BotStatusChange.objects.filter(bot__recall_id=second).exists(), timeout=10)
    first.refresh_from_db()
    duplicate = Bot.objects.get(recall_id=second)
    assert first.recall_id != second and duplicate.duplicate_of == first  # the launch keeps its bot
    codes = [change["code"] for change in fake_recall.bots[second]["status_changes"]]
    wait_for(lambda: duplicate.status_changes.count() == len(codes), timeout=10)
    assert list(duplicate.status_changes.values_list("code", flat=True)) == codes  # tracked, never dropped

    body = api_client.get(f"/api/bots/{first.public_id}/", **backend).json()
    assert body["duplicates"] == [{"id": str(duplicate.public_id), "recall_id": second, "status": codes[-1]}]
    assert api_client.get(f"/api/bots/{duplicate.public_id}/", **backend).json()["duplicate_of"] == str(first.public_id)

    client.force_login(staff_with("recallbots.view_bot"))
    listing = client.get("/admin/recallbots/bot/?second_bot=duplicate")
    assert listing.status_code == 200
    assert second in listing.content.decode() and f"duplicate of {first.recall_id}" in listing.content.decode()
    assert "1 duplicate(s)" in client.get("/admin/recallbots/bot/").content.decode()
    change = client.get(f"/admin/recallbots/bot/{first.pk}/change/").content.decode()
    assert f"Recall bot {second}" in change
    assert end_user_connection.callback_secret not in change

    client.force_login(staff_with("recallbots.view_recallcredential", username="neighbour"))
    assert client.get("/admin/recallbots/bot/").status_code == 403
    assert client.get(f"/admin/recallbots/bot/{first.pk}/change/").status_code == 403
