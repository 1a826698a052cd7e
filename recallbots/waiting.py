"""Bots that wait for their user: `"start": "when_user_joins"`.

An OBF bot gets into a meeting only while its user is in it; a try before that fails and emails
the host. So while the broker sees the meeting (zoomauth.presence), the bot is created at Recall
only the moment its user (or an OBF candidate) is seen in it: at once if one already is. The wait
ends `user_never_joined` at its deadline, or `meeting_ended` when the meeting ends first; no bot
is created at Recall in either case. A meeting the broker cannot see is launched at once.

The trigger costs nothing per tick: a recorded join looks up the bots waiting on that meeting
(a partial index on the waiting bots' meeting_id) and enqueues their launch. Each wait's end is
a task with a countdown; beat's sweep (the partial index on wait_until) catches lost ones.
"""

import json
import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from brokerproject.celery import enqueue_safely
from zoomauth.presence import connections_present, meeting_visible
from zoomauth.services import callback_grants_end

from .launch_at_recall import bot_create_at_recall
from .models import Bot
from .status import bot_status_event

logger = logging.getLogger(__name__)


def launch_presence(*, request, meeting_id: str) -> str:
    """'' for a launch that does not wait; else whether the broker sees the meeting."""
    if request.start != Bot.Start.WHEN_USER_JOINS:
        return ""
    connection = request.connection
    if connection is not None and meeting_visible(app_id=connection.app_id, meeting_id=meeting_id):
        return Bot.Presence.VISIBLE
    return Bot.Presence.NOT_VISIBLE


def bot_wait(*, bot: Bot, payload: dict, wait_minutes: int) -> Bot:
    """Store the launch as waiting; launch it now if its user is in already."""
    wait = timedelta(minutes=wait_minutes)
    bot.wait_for_user(payload=json.dumps(payload), until=timezone.now() + wait)
    transaction.on_commit(
        lambda: enqueue_safely("recallbots.tasks.bot_wait_expire", bot.pk, countdown=wait.total_seconds())
    )
    logger.info("bot waits for its user", extra={"bot": bot.public_id})
    # After the bot is stored: a join recorded from now on finds it; one recorded before is seen here.
    if connections_present(meeting_id=bot.meeting_id, connection_ids=_authorizers(bot)):
        delay = bot_release_waiting(bot_id=bot.pk)
        if delay is not None:
            enqueue_safely("recallbots.tasks.bot_create_at_recall", bot.pk, countdown=delay)
        bot.refresh_from_db()
    return bot


def _authorizers(bot: Bot) -> list[int]:
    return [pk for pk in [bot.connection_id, *bot.obf_candidates] if pk]


def bot_release_waiting(*, bot_id: int) -> float | None:
    """Its user is in: create the bot at Recall now. Returns a delay before the next try when
    Recall throttles (the launch is then an ordinary queued one)."""
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None or not bot.release_waiting():
        return None
    logger.info("bot's user joined: launching", extra={"bot": bot.public_id})
    return bot_create_at_recall(bot_id=bot_id)


def _end(bot: Bot, *, status: str, at: datetime) -> bool:
    with transaction.atomic():
        if not bot.end_waiting(status=status, at=at):
            return False
        callback_grants_end(holder=bot.callback_holder)  # no bot was sent: its URLs end now
        bot_status_event(bot=bot, code=status, sub_code=None, when=at)
    logger.info("bot's wait ended", extra={"bot": bot.public_id, "status": status})
    return True


def bot_wait_expire(*, bot_id: int) -> float | None:
    """The wait's end: user_never_joined. Returns the seconds left if it came early."""
    bot = Bot.objects.filter(pk=bot_id, status=Bot.Status.WAITING_FOR_USER).first()
    if bot is None:
        return None
    now = timezone.now()
    if bot.wait_until and bot.wait_until > now:
        return (bot.wait_until - now).total_seconds()
    _end(bot, status=Bot.Status.USER_NEVER_JOINED, at=now)
    return None


def bots_waited_out() -> int:
    """Beat's catch-up for waits whose task was lost."""
    ended = 0
    for bot in Bot.objects.waited_out()[:500]:
        ended += _end(bot, status=Bot.Status.USER_NEVER_JOINED, at=timezone.now())
    return ended


# --- what zoomauth.presence's signals do (receivers.py connects them) ---------------------------


def _waiting_on(*, app_id: int, meeting_id: str):
    return Bot.objects.waiting().filter(meeting_id=meeting_id, connection__app_id=app_id)


def bots_waiting_for(*, app_id: int, meeting_id: str, connection_id: int) -> list[int]:
    """The bots of the meeting waiting for this connection's user (their own, or a candidate)."""
    bots = _waiting_on(app_id=app_id, meeting_id=meeting_id).only("pk", "connection_id", "obf_candidates")
    return [bot.pk for bot in bots if connection_id in _authorizers(bot)]


def bots_meeting_ended(*, app_id: int, meeting_id: str, at: datetime) -> None:
    # A bot launched after the end (a late event) waits for the next start.
    for bot in _waiting_on(app_id=app_id, meeting_id=meeting_id).filter(created_at__lt=at):
        _end(bot, status=Bot.Status.MEETING_ENDED, at=at)
