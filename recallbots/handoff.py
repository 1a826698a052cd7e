"""Hand-off: `"handoff": true` on an OBF launch with candidates.

An OBF bot is in the call only while the user whose token it carries is in it: Zoom removes it
the moment that user leaves. With hand-off, when that user leaves while the bot is in the call
and another of the launch's authorizers (the launching user, the candidates) is still in, the
broker sends a successor bot for the same meeting, whose OBF URL mints for whoever is in.

Two signals say the user left: zoomauth.presence's user_left (Zoom's participant_left), and
Recall's call_ended with sub_code authorized_user_left_meeting. Either enqueues bot_hand_off,
which acts only when presence agrees that the user left after their token was minted (a Recall
status that outruns Zoom's event waits for that event), the meeting has not ended since then
(a PMI keeps its number: a later instance's leave is not this bot's), Recall's removal is no
older than SWEEP_WINDOW (a later leave does not revive a bot long gone), and someone
who may authorize the bot is in. Of any number of callers, one claims the bot's hand-off (a
conditional UPDATE, in the transaction that stores the successor; no lock is held while Recall
answers) and the successor then goes the queued launch's way to Recall (throttling, retries,
beat's catch-up). The claimed bot is out before its successor exists, so two bots of one launch
are never in the call at once; a launch has at most Bot.HANDOFF_MAX_SUCCESSORS successors.
"""

import json
import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from brokerproject.celery import enqueue_safely
from zoomauth.models import CallbackGrant, CallbackLog, ZoomConnection
from zoomauth.presence import connection_left_since, connections_present, meeting_ended_since, meeting_has_ended

from .launch import LaunchError, LaunchRequest, bot_recall_payload
from .launch_at_recall import bot_create_at_recall
from .meeting_urls import parse_zoom_url
from .models import Bot
from .status import bot_status_event

logger = logging.getLogger(__name__)

# Beat's catch-up looks this far back for removed bots whose hand-off message was lost.
SWEEP_WINDOW = timedelta(minutes=10)


def _authorizers(bot: Bot, launcher: ZoomConnection) -> list[ZoomConnection]:
    """[the launcher's connection, the candidates who still allow it], as zoomauth.credentials.obf_authorizer mints."""
    ids = [pk for pk in bot.obf_candidates if pk != launcher.pk]
    allowed = {c.pk: c for c in ZoomConnection.objects.obf_authorizers_for(launcher.pk).filter(pk__in=ids)}
    return [launcher, *(allowed[pk] for pk in ids if pk in allowed)]


def _successor_request(bot: Bot, candidates: list[ZoomConnection]) -> LaunchRequest:
    """The launch again, as it was decided (the grants say whether the ZAK was the service
    account's and whether the join token skips the waiting room), starting now."""
    grants = list(CallbackGrant.objects.filter(holder=bot.callback_holder))
    return LaunchRequest(
        user=bot.user,
        meeting_url=bot.meeting_url,
        token_kinds=tuple(bot.token_kinds),
        connection=bot.connection,
        zak_from_service_account=any(
            CallbackLog.Kind.ZAK in grant.kinds and grant.connection_id != bot.connection_id for grant in grants
        ),
        bypass_waiting_room=any(grant.bypass_waiting_room for grant in grants),
        bot_name=bot.bot_name,
        metadata=bot.metadata,
        obf_candidates=tuple(candidates),
        handoff=True,
    )


def _successor_create(bot: Bot, authorizers: list[ZoomConnection]) -> Bot:
    """In the claim's transaction: the successor row, its URLs and its create-bot body (queued)."""
    launcher = authorizers[0]  # bot.connection
    if not launcher.is_usable:
        raise LaunchError("The launching user's Zoom connection is no longer usable.")
    request = _successor_request(bot, authorizers[1:])
    successor = Bot.objects.create(
        user=bot.user,
        connection=launcher,
        meeting_url=bot.meeting_url,
        meeting_id=bot.meeting_id,
        meeting_passcode=bot.meeting_passcode,
        token_kinds=list(bot.token_kinds),
        bot_name=bot.bot_name,
        metadata=bot.metadata,
        obf_candidates=[candidate.pk for candidate in request.obf_candidates],
        handoff=True,
        previous_bot=bot,
        handoff_generation=bot.handoff_generation + 1,
    )
    link = parse_zoom_url(bot.meeting_url)
    holder = successor.callback_holder
    payload = bot_recall_payload(request=request, link=link, meeting_id=bot.meeting_id, holder=holder)
    payload["metadata"] = {**bot.metadata, "broker_bot_id": str(successor.public_id)}
    successor.queue(payload=json.dumps(payload))  # due now: the caller tries Recall at once
    bot_status_event(bot=successor, code=Bot.Status.QUEUED, sub_code=None, when=timezone.now())
    return successor


def bot_hand_off(*, bot_id: int) -> Bot | None:
    """The successor of a bot whose OBF user left, or None when there is none to send (not yet,
    no one in, the meeting ended, the last successor, already handed off)."""
    bot = (
        Bot.objects.select_related("connection", "user")
        .filter(pk=bot_id, handoff=True, handed_off_at__isnull=True)
        .first()
    )
    if bot is None or bot.connection is None or bot.handoff_generation >= Bot.HANDOFF_MAX_SUCCESSORS:
        return None
    left_id, minted_at = bot.obf_minted_for()
    # A removal older than beat's catch-up window is over: a later leave is not this bot's.
    if left_id is None or not bot.was_removed_with_its_user(since=timezone.now() - SWEEP_WINDOW):
        return None
    app_id, meeting_id = bot.connection.app_id, bot.meeting_id
    if meeting_has_ended(app_id=app_id, meeting_id=meeting_id) or not connection_left_since(
        app_id=app_id, meeting_id=meeting_id, connection_id=left_id, since=minted_at
    ):
        return None
    if meeting_ended_since(app_id=app_id, meeting_id=meeting_id, since=minted_at):  # its instance is over
        return None
    authorizers = _authorizers(bot, bot.connection)
    if not connections_present(meeting_id=bot.meeting_id, connection_ids=[c.pk for c in authorizers]):
        logger.info("bot's OBF user left; no one else of its launch is in", extra={"bot": bot.public_id})
        return None
    try:
        with transaction.atomic():
            if not bot.claim_handoff(at=timezone.now()):
                return None
            successor = _successor_create(bot, authorizers)
    except LaunchError as exc:  # nothing was claimed or stored: a later signal may try again
        logger.warning("hand-off refused: %s", exc, extra={"bot": bot.public_id})
        return None
    logger.info("bot handed off", extra={"bot": bot.public_id, "successor": successor.public_id})
    delay = bot_create_at_recall(bot_id=successor.pk)
    if delay is not None:
        enqueue_safely("recallbots.tasks.bot_create_at_recall", successor.pk, countdown=delay)
    return successor


def bots_hand_off_due() -> list[int]:
    """Beat's catch-up: bots Recall says were removed with their user (a durable status) in the
    last SWEEP_WINDOW that have not handed off; bot_hand_off decides and claims each."""
    since = timezone.now() - SWEEP_WINDOW
    removed = Q(
        status_changes__code=Bot.Status.CALL_ENDED,
        status_changes__sub_code=Bot.REMOVED_WITH_ITS_USER,
        status_changes__received_at__gte=since,
    )
    due = Bot.objects.filter(removed, handoff=True, handed_off_at__isnull=True)
    return list(due.values_list("pk", flat=True).distinct()[:200])


def bots_carrying_obf_of(*, app_id: int, meeting_id: str, connection_id: int) -> list[int]:
    """The meeting's bots that may hand off and last fetched this connection's OBF token (what
    zoomauth.presence's user_left does: receivers.py)."""
    bots = Bot.objects.filter(
        meeting_id=meeting_id, connection__app_id=app_id, handoff=True, handed_off_at__isnull=True
    ).only("pk", "public_id")
    return [bot.pk for bot in bots if bot.obf_minted_for()[0] == connection_id]
