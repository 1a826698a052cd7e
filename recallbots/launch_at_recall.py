"""Creating a launch's bot at Recall, never twice: the create or, after an ambiguous one, the
lookup (LaunchUnresolved while Recall's list may still lag), what is stored of the outcome, and
the queued launch a worker takes up (claimed through models.LAUNCH_LEASE)."""

import json
import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from brokerproject import claims
from brokerproject.retry import backoff
from zoomauth.models import ZoomConnection
from zoomauth.presence import meeting_ended_since
from zoomauth.services import callback_grants_end

from . import recall
from .models import Bot
from .status import bot_status_event

logger = logging.getLogger(__name__)


def store_launch_failed(bot: Bot, exc: Exception, *, holder: uuid.UUID | None = None) -> None:
    if not bot.launch_failed(error=str(exc), holder=holder):
        logger.info("launch's claim taken over: its failure is not stored", extra={"bot": bot.public_id})
        return
    callback_grants_end(holder=bot.callback_holder)  # no bot: its URLs end now
    if bot.previous_bot_id:  # a hand-off's successor: no API answer tells the backend, the event does
        bot_status_event(bot=bot, code=Bot.Status.LAUNCH_FAILED, sub_code=None, when=timezone.now())


def store_launched(bot: Bot, body: dict, *, holder: uuid.UUID | None = None) -> Bot:
    """Store what Recall created for the launch (Bot.launched: a second bot is a duplicate)."""
    changes = [
        (
            change.get("code"),
            change.get("sub_code") or "",
            recall.parse_time(change.get("created_at") or change.get("updated_at")) or timezone.now(),
        )
        for change in body.get("status_changes") or []
    ]
    duplicate = bot.launched(recall_id=body["id"], changes=changes, holder=holder)
    if duplicate is not None:
        logger.warning(
            "a second Recall bot for one launch", extra={"bot": bot.public_id, "recall_bot": duplicate.recall_id}
        )
    return bot


class LaunchUnresolved(recall.RecallRetryableError):
    """An ambiguous create's bot is not in Recall's list yet, and the list may still lag: no
    second POST before the window is over (or the bot's own webhook names the launch)."""


def create_or_find(client: recall.RecallClient, bot: Bot, payload: dict) -> dict:
    """POST /api/v1/bot/, never twice for one broker bot: after an ambiguous failure (Recall may
    have created it) the bot is looked up by its broker_bot_id metadata, and a new POST waits
    until the list has shown nothing for RECALL_BOT_LIST_LAG since the ambiguous attempt."""
    lookup = {"broker_bot_id": str(bot.public_id)}
    if bot.launch_outcome_unknown:
        found = client.find_bots(metadata=lookup)
        if found:
            return _first_of(bot, found)
        if left := bot.list_lag_left(lag=settings.RECALL_BOT_LIST_LAG):
            raise LaunchUnresolved(
                "Recall's bot list does not show the bot yet, and may still lag after the ambiguous create",
                retry_after=min(left, LIST_LOOK_INTERVAL),
                ambiguous=True,
            )
    try:
        return client.create_bot(payload)
    except recall.RecallRetryableError as exc:
        if not exc.ambiguous:
            raise
        bot.mark_launch_ambiguous()
        found = client.find_bots(metadata=lookup)
        if found:
            logger.info("bot found at Recall after an ambiguous create", extra={"bot": bot.public_id})
            return _first_of(bot, found)
        raise LaunchUnresolved(str(exc), retry_after=LIST_LOOK_INTERVAL, ambiguous=True) from None


# While an ambiguous create's window runs, Recall's list is looked at this often.
LIST_LOOK_INTERVAL = 10.0


def _first_of(bot: Bot, found: list[dict]) -> dict:
    """The launch takes the first bot Recall lists; any other is a duplicate, recorded."""
    first, *others = found
    for other in others:
        bot.record_duplicate(recall_id=other["id"])
    return first


def _launch_lease_seconds() -> float:
    """Long enough for a POST and a lookup at Recall, each within RECALL_HTTP_TIMEOUT."""
    return 3 * settings.RECALL_HTTP_TIMEOUT + 10


def bot_create_at_recall(*, bot_id: int) -> float | None:
    """A queued launch: one try at Recall now. Returns the delay before the next try (Recall's
    Retry-After, or a backoff), or None when the launch is over (created, or failed for good).

    The launch is claimed first (models.LAUNCH_LEASE, no row lock held while Recall answers), so
    the task's own retry and beat's catch-up never run it at once, and what a try learns is
    stored only while its claim holds (one that outlived its lease leaves the newer try's outcome
    alone); no sleep here: the caller schedules the next try."""
    holder = claims.new_holder()
    if not Bot.objects.claim_launch(bot_id=bot_id, holder=holder, seconds=_launch_lease_seconds()):
        return None
    bot = Bot.objects.get(pk=bot_id)
    if _successor_outlived_its_meeting(bot, holder=holder):
        return None
    try:
        body = create_or_find(recall.RecallClient(max_attempts=1), bot, json.loads(bot.queued_payload))
    except recall.RecallRetryableError as exc:
        delay = backoff(bot.launch_attempts, base=5.0, cap=300.0, retry_after=exc.retry_after)
        if not bot.queue_retry(holder=holder, retry_in=delay, error=str(exc)):
            return None  # the claim was taken over: the newer holder schedules the next try
        return delay
    except recall.RecallError as exc:
        store_launch_failed(bot, exc, holder=holder)
        return None
    store_launched(bot, body, holder=holder)
    logger.info("queued bot launched", extra={"bot": bot.public_id, "recall_bot": bot.recall_id})
    return None


def _successor_outlived_its_meeting(bot: Bot, *, holder: uuid.UUID) -> bool:
    """A hand-off's successor still queued (Recall throttled it) when meeting.ended came: it is
    never sent (none after the meeting ended; a PMI's next instance is not its meeting). It ends
    `meeting_ended` with its event. Not after an ambiguous create: Recall may hold it already."""
    if bot.previous_bot_id is None or bot.connection_id is None or bot.launch_outcome_unknown:
        return False
    app_id = ZoomConnection.objects.filter(pk=bot.connection_id).values_list("app_id", flat=True).first()
    if app_id is None or not meeting_ended_since(app_id=app_id, meeting_id=bot.meeting_id, since=bot.created_at):
        return False
    now = timezone.now()
    with transaction.atomic():
        if not bot.end_queued_unsent(status=Bot.Status.MEETING_ENDED, at=now, holder=holder):
            return False
        callback_grants_end(holder=bot.callback_holder)  # no bot was sent: its URLs end now
        bot_status_event(bot=bot, code=Bot.Status.MEETING_ENDED, sub_code=None, when=now)
    logger.info("hand-off successor not sent: the meeting ended", extra={"bot": bot.public_id})
    return True
