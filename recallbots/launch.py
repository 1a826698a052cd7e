"""Launching a bot: the one LaunchRequest of every door, its validation, its token URLs and its
create-bot body, and the launch from a request (at once, waiting for its user, or queued). The
create at Recall and the queued launch a worker takes up are in launch_at_recall."""

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from brokerproject.celery import enqueue_safely
from zoomauth.models import CallbackLog, ZoomConnection
from zoomauth.services import (
    callback_grant_issue,
    connection_for_meeting,
)

from . import recall, waiting
from .launch_at_recall import create_or_find, store_launch_failed, store_launched
from .meeting_urls import MeetingUrlError, parse_zoom_url
from .models import Bot
from .recall_apps import recall_client
from .status import grant_until

logger = logging.getLogger(__name__)


# An API request waits on a throttled Recall at most this long before the launch is queued.
API_RECALL_MAX_WAIT = 3.0


# OBF bots can only join once their user is in the meeting: let them wait in the lobby.
OBF_WAITING_ROOM_TIMEOUT = 1200


class LaunchError(Exception):
    """A bot could not be launched; the message is safe to show to the person."""


class LaunchForbidden(LaunchError):
    """The launch asks for tokens from a grant the launcher may not use (403)."""


class LaunchRepeated(LaunchError):
    """The launch's Idempotency-Key launched `bot` already (a repeat that raced the first)."""

    def __init__(self, bot):
        super().__init__("This Idempotency-Key launched a bot already.")
        self.bot = bot


# Clocks differ a little, and a form takes a while to fill in: a join time this far past still
# means "now".
JOIN_AT_PAST_TOLERANCE = timedelta(minutes=5)


def join_at_problem(join_at: datetime | None, *, now: datetime | None = None) -> str:
    """Why a launch's join_at cannot be taken ("" when it can): every door checks it the same way."""
    if join_at is None:
        return ""
    now = now or timezone.now()
    if join_at < now - JOIN_AT_PAST_TOLERANCE:
        return "join_at is in the past: leave it out to join now, or give a time ahead."
    if join_at > now + settings.BOT_JOIN_AT_MAX_AHEAD:
        return f"join_at is too far ahead: at most {settings.BOT_JOIN_AT_MAX_AHEAD.days} days from now."
    return ""


def validate_join_at(value: datetime | None) -> None:
    """A form or serializer field validator for join_at."""
    if problem := join_at_problem(value):
        raise ValidationError(problem)


def bot_zoom_config(
    *,
    holder: str,
    connection: ZoomConnection,
    meeting_id: str,
    token_kinds: list[str],
    bypass_waiting_room: bool = False,
    join_at: datetime | None = None,
    obf_candidates: list[ZoomConnection] | None = None,
) -> dict:
    """The bot's token URLs, each with the bot's own credential (a CallbackGrant): only these
    kinds, only this meeting, only while the bot lives. A join token comes from the meeting's
    host, and from another user's connection only when that user allowed it."""
    zoom_config: dict[str, str] = {}
    until = grant_until(join_at)
    if Bot.TokenKind.JOIN_TOKEN in token_kinds:
        zoom_config["join_token_url"] = _join_token_url(
            holder=holder,
            connection=connection,
            meeting_id=meeting_id,
            until=until,
            bypass_waiting_room=bypass_waiting_room,
        )
    own = [Bot.TokenKind(k).callback_kind for k in (Bot.TokenKind.ZAK, Bot.TokenKind.OBF) if k in token_kinds]
    if Bot.TokenKind.OBF in token_kinds and not meeting_id:
        raise LaunchError("An OBF token needs the meeting number; this link has none.")
    candidates = list(obf_candidates or ()) if Bot.TokenKind.OBF in token_kinds else []
    _check_obf_candidates(connection=connection, candidates=candidates)
    if own:
        grant, secret = callback_grant_issue(
            connection=connection,
            kinds=own,
            meeting_id=meeting_id,
            holder=holder,
            until=until,
            obf_candidates=candidates,
        )
        if Bot.TokenKind.ZAK in token_kinds:
            zoom_config["zak_url"] = grant.callback_url(CallbackLog.Kind.ZAK, secret)
        if Bot.TokenKind.OBF in token_kinds:
            zoom_config["obf_token_url"] = grant.callback_url(CallbackLog.Kind.OBF, secret)
    return zoom_config


def _join_token_url(
    *, holder: str, connection: ZoomConnection, meeting_id: str, until: datetime, bypass_waiting_room: bool
) -> str:
    """From the meeting's host's connection; another user's only when that host allowed it."""
    if not meeting_id:
        raise LaunchError("A join token needs the meeting number; this link has none.")
    host = connection_for_meeting(meeting_id=meeting_id) or connection
    if host.user_id != connection.user_id and not host.allow_join_tokens_for_others:
        raise LaunchForbidden(
            "This meeting is hosted by another user's Zoom account, which has not allowed join tokens for "
            "other users' bots. The host can allow it on their connection (\"join tokens for other users' "
            'bots"), or launch this bot without a join token.'
        )
    grant, secret = callback_grant_issue(
        connection=host,
        kinds=[CallbackLog.Kind.JOIN_TOKEN],
        meeting_id=meeting_id,
        holder=holder,
        until=until,
        bypass_waiting_room=bypass_waiting_room,
    )
    return grant.callback_url(CallbackLog.Kind.JOIN_TOKEN, secret)


def _check_obf_candidates(*, connection: ZoomConnection, candidates: list[ZoomConnection]) -> None:
    for candidate in candidates:
        if candidate.user_id != connection.user_id and not candidate.allow_obf_for_others:
            raise LaunchForbidden(
                f"The OBF candidate {candidate.public_id} has not allowed other users' bots "
                'to carry their OBF token. They can allow it on their connection ("OBF for other users\' bots"), '
                "or launch without them."
            )


def service_account_connection() -> ZoomConnection | None:
    return ZoomConnection.objects.active().filter(is_service_account=True).first()


@dataclass(frozen=True)
class LaunchRequest:
    """What every front door asks for (the page, the admin, the API): one contract for a launch.
    Each door validates its own input, then builds this with `from_cleaned` and calls bot_launch."""

    user: Any
    meeting_url: str
    token_kinds: tuple[str, ...] = ()
    connection: ZoomConnection | None = None
    zak_from_service_account: bool = False
    bypass_waiting_room: bool = False
    bot_name: str = "Recall Bot"
    join_at: datetime | None = None
    metadata: dict = field(default_factory=dict)
    start: str = Bot.Start.NOW
    wait_minutes: int = 30
    obf_candidates: tuple[ZoomConnection, ...] = ()
    handoff: bool = False
    idempotency_key: str = ""

    @classmethod
    def from_cleaned(cls, *, user, data: Mapping) -> "LaunchRequest":
        names = {f.name for f in fields(cls)} - {"user"}
        values = {name: data[name] for name in names if data.get(name) is not None}
        values["token_kinds"] = tuple(dict.fromkeys(values.get("token_kinds", ())))
        return cls(user=user, **values)

    @property
    def urls_from(self) -> datetime | None:
        """When the bot's URLs start to be needed: its join_at, or the end of its wait."""
        if self.start == Bot.Start.WHEN_USER_JOINS:
            return timezone.now() + timedelta(minutes=self.wait_minutes)
        return self.join_at

    @property
    def zak_from_user(self) -> bool:
        return Bot.TokenKind.ZAK in self.token_kinds and not self.zak_from_service_account

    @property
    def needs_user_connection(self) -> bool:
        return bool({Bot.TokenKind.OBF, Bot.TokenKind.JOIN_TOKEN} & set(self.token_kinds)) or self.zak_from_user


def _meeting_id(link, connection: ZoomConnection | None) -> str:
    if not link.meeting_id and link.vanity and connection is not None and connection.pmi:
        return connection.pmi  # a /my/ personal link opens the host's PMI
    return link.meeting_id


def bot_recall_payload(*, request: LaunchRequest, link, meeting_id: str, holder: str) -> dict:
    """Recall's POST /api/v1/bot/ body for a launch (without the broker's own metadata)."""
    user_kinds = [k for k in request.token_kinds if k != Bot.TokenKind.ZAK or request.zak_from_user]
    zoom_config = (
        bot_zoom_config(
            holder=holder,
            connection=request.connection,
            meeting_id=meeting_id,
            token_kinds=user_kinds,
            bypass_waiting_room=request.bypass_waiting_room,
            join_at=request.urls_from,
            obf_candidates=list(request.obf_candidates),
        )
        if request.connection is not None
        else {}
    )
    if Bot.TokenKind.ZAK in request.token_kinds and request.zak_from_service_account:
        service = service_account_connection()
        if service is None:
            raise LaunchError("No service account is set: staff mark one Zoom connection as the service account.")
        grant, secret = callback_grant_issue(
            connection=service,
            kinds=[CallbackLog.Kind.ZAK],
            meeting_id=meeting_id,
            holder=holder,
            until=grant_until(request.urls_from),
        )
        zoom_config["zak_url"] = grant.callback_url(CallbackLog.Kind.ZAK, secret)
    payload: dict = {"meeting_url": link.url, "bot_name": request.bot_name}
    if zoom_config:
        payload["zoom"] = zoom_config
    if request.join_at:
        payload["join_at"] = request.join_at.isoformat()
    if Bot.TokenKind.OBF in request.token_kinds:
        payload["automatic_leave"] = {"waiting_room_timeout": OBF_WAITING_ROOM_TIMEOUT}
    return payload


def bot_launch(*, request: LaunchRequest, queue_when_throttled: bool = False) -> Bot:
    """Create the bot at Recall. With `queue_when_throttled` (the API), a Recall 429/507/5xx that
    outlasts a few seconds does not hold the request: the bot is stored as `queued` and a
    worker creates it at Recall (bot_create_at_recall), honouring Retry-After."""
    try:
        link = parse_zoom_url(request.meeting_url)
    except MeetingUrlError as exc:
        raise LaunchError(str(exc)) from None
    if problem := join_at_problem(request.join_at):
        raise LaunchError(problem)
    connection = request.connection
    if request.needs_user_connection and (connection is None or not connection.is_usable):
        raise LaunchError("Connect a Zoom account first (or reconnect it): the chosen tokens come from it.")
    meeting_id = _meeting_id(link, connection)
    presence = waiting.launch_presence(request=request, meeting_id=meeting_id)
    bot, payload = _launch_stored(request=request, link=link, meeting_id=meeting_id, presence=presence)
    if presence == Bot.Presence.VISIBLE:
        return waiting.bot_wait(bot=bot, payload=payload, wait_minutes=request.wait_minutes)
    return _launch_at_recall(bot, payload, queue_when_throttled=queue_when_throttled)


def _launch_stored(*, request: LaunchRequest, link, meeting_id: str, presence: str) -> tuple[Bot, dict]:
    """The launch's row, its URLs and its create-bot body; a repeat of an Idempotency-Key that
    raced the first launch is LaunchRepeated."""
    bot_metadata = {str(k): str(v) for k, v in request.metadata.items()}
    if request.idempotency_key:
        Bot.release_expired_key(request.idempotency_key)
    try:
        with transaction.atomic():  # a refused launch leaves neither a bot nor URLs behind
            bot = Bot.objects.create(
                user=request.user,
                connection=request.connection,
                meeting_url=link.url,
                meeting_id=meeting_id,
                meeting_passcode=link.passcode,
                token_kinds=list(request.token_kinds),
                bot_name=request.bot_name,
                join_at=request.join_at,
                metadata=bot_metadata,
                start=request.start,
                presence=presence,
                obf_candidates=[candidate.pk for candidate in request.obf_candidates],
                handoff=request.handoff,
                idempotency_key=request.idempotency_key or None,
            )
            payload = bot_recall_payload(request=request, link=link, meeting_id=meeting_id, holder=bot.callback_holder)
    except IntegrityError:
        made = Bot.launched_with_key(request.idempotency_key) if request.idempotency_key else None
        if made is None:
            raise
        raise LaunchRepeated(made) from None
    payload["metadata"] = {**bot_metadata, "broker_bot_id": str(bot.public_id)}
    return bot, payload


def _launch_at_recall(bot: Bot, payload: dict, *, queue_when_throttled: bool) -> Bot:
    client = recall.RecallClient(max_wait=API_RECALL_MAX_WAIT) if queue_when_throttled else recall_client()
    try:
        body = create_or_find(client, bot, payload)
    except recall.RecallRetryableError as exc:
        # An ambiguous create may have made the bot: a worker finds out (never a failed launch
        # whose URLs end under a bot that is joining).
        if not queue_when_throttled and not bot.launch_outcome_unknown:
            store_launch_failed(bot, exc)
            raise LaunchError(f"Recall did not create the bot: {exc}") from None
        countdown = exc.retry_after or 5
        # Not over a bot its own status webhook adopted meanwhile (the create was ambiguous).
        if not bot.queue(payload=json.dumps(payload), error=str(exc), retry_in=countdown):
            logger.info("bot found through its status webhook during its create", extra={"bot": bot.public_id})
            return bot
        transaction.on_commit(
            lambda: enqueue_safely("recallbots.tasks.bot_create_at_recall", bot.pk, countdown=countdown)
        )
        logger.info("bot launch queued: Recall is throttling", extra={"bot": bot.public_id})
        return bot
    except recall.RecallError as exc:
        store_launch_failed(bot, exc)
        raise LaunchError(f"Recall did not create the bot: {exc}") from None
    store_launched(bot, body)
    logger.info("bot launched", extra={"bot": bot.public_id, "recall_bot": bot.recall_id})
    return bot
