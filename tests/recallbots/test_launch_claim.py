"""A queued launch is claimed through brokerproject.claims (recallbots.models.LAUNCH_LEASE): a try
whose claim was taken over (Recall answered after its lease ran out, and another worker claimed the
launch meanwhile) stores nothing over the newer holder's outcome, and a Recall bot it did get is
still recorded, never dropped."""

import uuid
from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from brokerproject import claims
from recallbots.models import Bot

LEASE_SECONDS = 60.0


@pytest.fixture
def queued(staff) -> Bot:
    return Bot.objects.create(
        user=staff, meeting_url="https://zoom.us/j/1", meeting_id="1", status=Bot.Status.QUEUED, queued_payload="{}"
    )


def claim(bot: Bot) -> uuid.UUID:
    holder = claims.new_holder()
    assert Bot.objects.claim_launch(bot_id=bot.pk, holder=holder, seconds=LEASE_SECONDS)
    return holder


def lease_runs_out(bot: Bot) -> None:
    """The first try is still waiting on Recall when its lease ends (by the database's clock)."""
    Bot.objects.filter(pk=bot.pk).update(launch_next_attempt_at=Now() - timedelta(seconds=1))


def taken_over(bot: Bot) -> tuple[uuid.UUID, uuid.UUID]:
    first = claim(bot)
    lease_runs_out(bot)
    return first, claim(bot)


def test_a_live_claim_is_not_taken_twice_and_a_run_out_one_is(queued):
    first = claim(queued)
    assert not Bot.objects.claim_launch(bot_id=queued.pk, holder=claims.new_holder(), seconds=LEASE_SECONDS)
    lease_runs_out(queued)
    second = claim(queued)
    queued.refresh_from_db()
    assert queued.launch_claim_holder == second != first
    assert queued.launch_attempts == 2


def test_a_try_whose_claim_was_taken_over_does_not_reschedule_the_launch(queued):
    first, second = taken_over(queued)
    assert not queued.queue_retry(holder=first, retry_in=5, error="Recall answered 429 late")
    queued.refresh_from_db()
    assert queued.launch_claim_holder == second and queued.last_error == ""
    assert queued.launch_next_attempt_at > timezone.now() + timedelta(seconds=LEASE_SECONDS / 2)  # the second's lease

    assert queued.queue_retry(holder=second, retry_in=5, error="Recall answered 429")
    queued.refresh_from_db()
    assert queued.launch_claim_holder is None and queued.last_error == "Recall answered 429"
    assert queued.launch_next_attempt_at < timezone.now() + timedelta(seconds=10)


def test_a_late_permanent_failure_does_not_fail_a_launch_taken_over(queued):
    first, second = taken_over(queued)
    stale = Bot.objects.get(pk=queued.pk)
    assert not stale.launch_failed(error="Recall answered 400 late", holder=first)
    queued.refresh_from_db()
    assert queued.status == Bot.Status.QUEUED and queued.queued_payload == "{}" and queued.last_error == ""

    assert queued.launched(recall_id="rb_second", changes=[], holder=second) is None
    queued.refresh_from_db()
    assert queued.recall_id == "rb_second" and queued.status == Bot.Status.CREATED


def test_a_late_try_does_not_end_a_launch_taken_over(queued):
    first, second = taken_over(queued)
    assert not queued.end_queued_unsent(status=Bot.Status.MEETING_ENDED, at=timezone.now(), holder=first)
    queued.refresh_from_db()
    assert queued.status == Bot.Status.QUEUED and queued.launch_claim_holder == second
    assert not queued.status_changes.exists()


def test_a_recall_bot_stored_for_the_launch_ends_every_claim_on_it(queued):
    first, second = taken_over(queued)
    # The first try's create did reach Recall: its bot exists, the launch takes it.
    assert Bot.objects.get(pk=queued.pk).launched(recall_id="rb_first", changes=[], holder=first) is None
    queued.refresh_from_db()
    assert queued.recall_id == "rb_first" and queued.status == Bot.Status.CREATED
    assert queued.launch_claim_holder is None and queued.launch_next_attempt_at is None

    # The second try, still at Recall, can neither fail the launch nor requeue it...
    assert not Bot.objects.get(pk=queued.pk).launch_failed(error="Recall answered 400", holder=second)
    assert not Bot.objects.get(pk=queued.pk).queue_retry(holder=second, retry_in=5, error="Recall answered 429")
    # ...and a bot it got is the launch's second one: recorded, linked.
    duplicate = Bot.objects.get(pk=queued.pk).launched(recall_id="rb_second", changes=[], holder=second)
    assert duplicate is not None and duplicate.duplicate_of_id == queued.pk and duplicate.recall_id == "rb_second"
    queued.refresh_from_db()
    assert queued.recall_id == "rb_first" and queued.status == Bot.Status.CREATED and queued.last_error == ""


def test_a_late_bot_after_the_newer_try_failed_is_recorded_without_reviving_the_launch(queued):
    first, second = taken_over(queued)
    assert Bot.objects.get(pk=queued.pk).launch_failed(error="Recall answered 400", holder=second)
    duplicate = Bot.objects.get(pk=queued.pk).launched(recall_id="rb_first", changes=[], holder=first)
    assert duplicate is not None and duplicate.duplicate_of_id == queued.pk
    queued.refresh_from_db()
    assert queued.status == Bot.Status.LAUNCH_FAILED and queued.recall_id is None
    assert queued.last_error == "Recall answered 400" and queued.launch_claim_holder is None


def test_a_launch_queued_on_a_host_whose_clock_runs_ahead_is_due_by_the_databases_clock(queued, monkeypatch):
    """queue(retry_in=0) is due at once for the worker's claim, which reads the database's clock:
    a web host 30 s ahead of the database must not push the try 30 s out (its task would find it
    not due and end the retry chain until beat's sweep)."""
    ahead = timezone.now() + timedelta(seconds=30)
    monkeypatch.setattr(timezone, "now", lambda: ahead)
    assert queued.queue(payload="{}", retry_in=0)
    assert Bot.objects.claim_launch(bot_id=queued.pk, holder=claims.new_holder(), seconds=LEASE_SECONDS)
