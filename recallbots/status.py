"""A bot's status from Recall's webhooks (and the launch it adopts), and the
bot.status_changed event to the customer's backend."""

import logging
import uuid
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from brokerproject.celery import enqueue_safely
from webhooks.events import event_emit
from webhooks.models import Event
from zoomauth.services import (
    callback_grants_end,
    callback_grants_reopen,
)

from . import recall
from .models import Bot

logger = logging.getLogger(__name__)


def grant_until(join_at: datetime | None) -> datetime:
    """A bot's URLs end when the bot does (plus a grace period); this caps a bot that never says."""
    return (join_at or timezone.now()) + settings.BOT_URL_MAX_LIFETIME


def _adopt(*, recall_bot_id: str, broker_bot_id: str) -> Bot | None:
    """A status for a Recall bot the broker does not know by id, whose metadata names one of the
    broker's bots: the create that failed ambiguously (answer lost, lookup found nothing yet)
    did create it, and the launch takes its Recall id (no second POST from now on). When the
    launch holds another Recall id already, this bot is a second one: recorded, linked."""
    try:
        public_id = uuid.UUID(broker_bot_id)
    except ValueError:
        return None
    launch = Bot.objects.filter(public_id=public_id, duplicate_of__isnull=True).first()
    if launch is None:
        return None
    if launch.take_recall_id(recall_bot_id):
        logger.info("bot found through its status webhook", extra={"recall_bot": recall_bot_id})
        callback_grants_reopen(holder=launch.callback_holder, until=grant_until(launch.join_at))
        return launch
    duplicate = launch.record_duplicate(recall_id=recall_bot_id)
    logger.warning("a second Recall bot for one launch", extra={"bot": launch.public_id, "recall_bot": recall_bot_id})
    return duplicate


def bot_record_status(
    *,
    recall_bot_id: str,
    code: str,
    sub_code: str | None,
    occurred_at: str | None,
    webhook_id: str,
    broker_bot_id: str = "",
) -> bool:
    """Append a status event (idempotent on webhook_id). Returns False for a duplicate.
    `broker_bot_id` is the bot's metadata as Recall sends it back: it finds a bot whose create
    answer was lost."""
    bot = Bot.objects.filter(recall_id=recall_bot_id).first()
    if bot is None and broker_bot_id:
        bot = _adopt(recall_bot_id=recall_bot_id, broker_bot_id=broker_bot_id)
    if bot is None:
        logger.info("status for an unknown bot", extra={"recall_bot": recall_bot_id})
        return False
    when = recall.parse_time(occurred_at) or timezone.now()
    if not bot.record_status_change(code=code, sub_code=sub_code, at=when, webhook_id=webhook_id):
        return False
    with transaction.atomic():
        bot = bot.record_status(code=code, sub_code=sub_code, at=when)
        if bot.is_final:  # its URLs work a little longer (a late fetch), then never again
            callback_grants_end(holder=bot.callback_holder, grace=settings.BOT_URL_GRACE)
        bot_status_event(bot=bot, code=code[:50], sub_code=sub_code, when=when)
        if bot.handoff and code == Bot.Status.CALL_ENDED and sub_code == Bot.REMOVED_WITH_ITS_USER:
            # Zoom removed it because its OBF user left: hand off (if presence agrees, see handoff.py).
            transaction.on_commit(partial(enqueue_safely, "recallbots.tasks.bot_hand_off", bot.pk))
    return True


def _next_bot(bot: Bot) -> str | None:
    successor = Bot.objects.filter(previous_bot=bot).values_list("public_id", flat=True).first()
    return str(successor) if successor else None


def bot_status_event(*, bot: Bot, code: str, sub_code: str | None, when: datetime) -> None:
    """bot.status_changed to the customer's backend, in the caller's transaction."""
    event_emit(
        type=Event.Type.BOT_STATUS_CHANGED,
        data={
            "bot": {
                "id": str(bot.public_id),
                "recall_id": bot.recall_id,
                "duplicate_of": str(duplicate_of.public_id) if (duplicate_of := bot.duplicate_of) else None,
                "meeting_id": bot.meeting_id,
                "connection": str(connection.public_id) if (connection := bot.connection) else None,
                "status": bot.status,
                "sub_code": bot.sub_code,
                "previous_bot": str(previous_bot.public_id) if (previous_bot := bot.previous_bot) else None,
                "next_bot": _next_bot(bot),
            },
            "status": {"code": code, "sub_code": sub_code or None, "occurred_at": when.isoformat()},
        },
        connection_id=bot.connection_id,
    )
