import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from brokerproject.celery import enqueue_safely
from brokerproject.retry import backoff
from webhooks.events import event_emit
from webhooks.models import Event
from zoomauth.models import CallbackLog, ZoomApp, ZoomConnection
from zoomauth.presence import meeting_ended_since
from zoomauth.services import (
    ConnectFlowError,
    ConnectionUnusable,
    callback_grant_issue,
    callback_grants_end,
    callback_grants_reopen,
    connection_for_meeting,
    connection_save_grant,
)
from zoomauth.token_sources import TokenSourceError
from zoomauth.zoom import ZoomUser

from . import recall, waiting
from .meeting_urls import MeetingUrlError, parse_zoom_url
from .models import Bot, RecallCredential, RecallOAuthApp

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


def recall_client(*, base_url: str | None = None) -> recall.RecallClient:
    return recall.RecallClient(base_url=base_url)


# --- Zoom OAuth apps in Recall ----------------------------------------------------------------


def recall_app_register(*, zoom_app: ZoomApp, region: str | None = None) -> RecallOAuthApp:
    """Create the app in Recall (or adopt the one Recall already has for this client id)."""
    client = recall_client(base_url=recall.base_url_for(region) if region else None)
    existing = RecallOAuthApp.objects.filter(zoom_app=zoom_app).first()
    if existing is not None:
        return existing
    found = client.list_zoom_oauth_apps(client_id=zoom_app.client_id)
    if found:
        body = found[0]
        client.update_zoom_oauth_app(
            body["id"], client_secret=zoom_app.client_secret or "a", webhook_secret=zoom_app.webhook_secret
        )
    else:
        body = client.create_zoom_oauth_app(
            kind=zoom_app.kind,
            client_id=zoom_app.client_id,
            # Recall ignores the secret for customer-managed OAuth, but wants a value.
            client_secret=zoom_app.client_secret or "a",
            webhook_secret=zoom_app.webhook_secret,
        )
    return RecallOAuthApp.objects.create(zoom_app=zoom_app, recall_id=body["id"], base_url=client.base_url)


def recall_forward_targets(zoom_app: ZoomApp) -> list[str]:
    """webhooks' forward-target provider: Recall re-verifies Zoom's events at the app's URL."""
    recall_app = RecallOAuthApp.objects.filter(zoom_app=zoom_app).only("recall_id", "base_url").first()
    return [recall_app.webhook_url] if recall_app is not None else []


def recall_app_push_secrets(*, recall_app: RecallOAuthApp) -> None:
    client = recall_client(base_url=recall_app.base_url)
    zoom_app = recall_app.zoom_app
    body = client.update_zoom_oauth_app(
        recall_app.recall_id, client_secret=zoom_app.client_secret or "a", webhook_secret=zoom_app.webhook_secret
    )
    recall_app.webhook_last_validation_at = _parse_time(body.get("webhook_last_validation"))
    recall_app.save(update_fields=["webhook_last_validation_at", "updated_at"])


def recall_app_delete(*, recall_app: RecallOAuthApp) -> None:
    try:
        recall_client(base_url=recall_app.base_url).delete_zoom_oauth_app(recall_app.recall_id)
    except recall.RecallNotFoundError:
        pass
    RecallCredential.objects.filter(recall_app=recall_app).delete()
    recall_app.delete()


# --- credentials ------------------------------------------------------------------------------


def credential_sync_after_connect(*, connection_id: int) -> None:
    """After a customer-managed connect: register the user's credential in Recall (in a task)."""
    connection = ZoomConnection.objects.select_related("app").get(pk=connection_id)
    if not settings.RECALL_API_KEY or not RecallOAuthApp.objects.filter(zoom_app=connection.app).exists():
        logger.info(
            "no Recall credential registered: RECALL_API_KEY unset or the app is not registered with Recall",
            extra={"connection": connection.public_id},
        )
        return
    # After the commit (the task must see the connection); the queue being away must not fail the
    # connect page: enqueue_safely logs and moves on.
    transaction.on_commit(lambda: enqueue_safely("recallbots.tasks.credential_create_customer_managed", connection_id))


def _delete_conflicting(client: recall.RecallClient, *, recall_app: RecallOAuthApp, body: dict) -> bool:
    """Recall allows one credential per (app, Zoom user): find the old one, delete it."""
    user_id = body.get("conflicting_zoom_user_id")
    account_id = body.get("conflicting_zoom_account_id")
    if not (user_id or account_id):
        return False
    filters = {"oauth_app": recall_app.recall_id}
    filters["user_id" if user_id else "account_id"] = user_id or account_id
    for credential in client.list_credentials(**filters):
        client.delete_credential(credential["id"])
        RecallCredential.objects.filter(recall_id=credential["id"]).delete()
    return True


def credential_create_customer_managed(*, connection: ZoomConnection) -> RecallCredential:
    recall_app = RecallOAuthApp.objects.get(zoom_app=connection.app)
    client = recall_client(base_url=recall_app.base_url)
    old = RecallCredential.objects.filter(connection=connection).first()
    if old is not None:
        try:
            client.delete_credential(old.recall_id)
        except recall.RecallNotFoundError:
            pass
        old.delete()
    try:
        body = client.create_credential_customer_managed(
            oauth_app=recall_app.recall_id, access_token_callback_url=connection.access_token_callback_url
        )
    except recall.RecallError as exc:
        if exc.status != 400 or not _delete_conflicting(client, recall_app=recall_app, body=exc.body):
            raise
        body = client.create_credential_customer_managed(
            oauth_app=recall_app.recall_id, access_token_callback_url=connection.access_token_callback_url
        )
    return RecallCredential.objects.create(
        connection=connection,
        recall_app=recall_app,
        recall_id=body["id"],
        mode=RecallCredential.Mode.CUSTOMER_MANAGED,
        status=body.get("status") or RecallCredential.Status.UNKNOWN,
        last_synced_at=timezone.now(),
    )


def credential_create_recall_managed(*, user, app: ZoomApp, code: str, redirect_uri: str, code_verifier: str):
    """Recall-managed connect: the code goes to Recall, which exchanges it and keeps the tokens."""
    recall_app = RecallOAuthApp.objects.filter(zoom_app=app).first()
    if recall_app is None:
        raise ConnectFlowError(
            "This Zoom app is not registered with Recall yet. Ask an administrator.", http_status=503
        )
    client = recall_client(base_url=recall_app.base_url)
    try:
        body = client.create_credential_recall_managed(
            oauth_app=recall_app.recall_id, code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )
    except recall.RecallRetryableError:
        raise ConnectFlowError(
            "Recall is not answering right now. Connect again in a minute.", http_status=503
        ) from None
    except recall.RecallError as exc:
        if exc.status == 400 and _delete_conflicting(client, recall_app=recall_app, body=exc.body):
            raise ConnectFlowError(
                "This Zoom account was connected before; the old link was removed. Connect once more.", http_status=409
            ) from None
        logger.warning("recall refused credential: %s", exc)
        raise ConnectFlowError(f"Recall refused the connection: {exc}", http_status=502) from None

    zoom_user_id = body.get("user_id") or body.get("account_id") or body["id"]
    me = ZoomUser(id=str(zoom_user_id), account_id=str(body.get("account_id") or ""), email="", pmi="")
    connection = connection_save_grant(user=user, app=app, me=me, tokens=None, token_source="recall")
    RecallCredential.objects.update_or_create(
        connection=connection,
        defaults={
            "recall_app": recall_app,
            "recall_id": body["id"],
            "mode": RecallCredential.Mode.RECALL_MANAGED,
            "status": body.get("status") or RecallCredential.Status.UNKNOWN,
            "last_synced_at": timezone.now(),
        },
    )
    return connection


def credential_delete_for_connection(*, connection_id: int) -> None:
    credential = RecallCredential.objects.select_related("recall_app").filter(connection_id=connection_id).first()
    if credential is None:
        return
    try:
        recall_client(base_url=credential.recall_app.base_url).delete_credential(credential.recall_id)
    except recall.RecallNotFoundError:
        pass
    except recall.RecallRetryableError:
        raise  # the task tries again later
    except recall.RecallError as exc:
        logger.warning("could not delete the Recall credential: %s", exc, extra={"credential": credential.recall_id})
        return
    credential.delete()


def credential_access_token(*, connection: ZoomConnection, timeout: float | None = None) -> tuple[str, datetime]:
    """Recall-managed: Recall holds the tokens; ask it for a current access token.
    Recall failing is a TokenSourceError (Recall's, not Zoom's); no credential means reconnect."""
    credential = RecallCredential.objects.select_related("recall_app").filter(connection=connection).first()
    if credential is None:
        raise ConnectionUnusable(
            "No Recall credential for this connection.", status=ZoomConnection.Status.NEEDS_RECONNECT
        )
    client = recall.RecallClient(base_url=credential.recall_app.base_url, timeout=timeout, max_attempts=1)
    try:
        token = client.credential_access_token(credential.recall_id)
    except recall.RecallError as exc:
        raise TokenSourceError(
            f"Recall could not give an access token: {exc}",
            retryable=isinstance(exc, recall.RecallRetryableError),
            retry_after=getattr(exc, "retry_after", None),
        ) from None
    return token.token, _parse_time(token.expires_at) or timezone.now() + timedelta(minutes=5)


class RecallManagedTokens:
    """zoomauth's TokenSource for Recall-managed connections (registered in apps.py)."""

    def access_token(self, *, connection, timeout):
        return credential_access_token(connection=connection, timeout=timeout)

    def complete_authorization(self, *, user, app, code, redirect_uri, code_verifier):
        return credential_create_recall_managed(
            user=user, app=app, code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )


def on_connection_connected(sender, *, connection_id: int, **kwargs) -> None:
    credential_sync_after_connect(connection_id=connection_id)


def on_connection_disconnected(sender, *, connection_id: int, **kwargs) -> None:
    # Recall is called from a task, after the commit: a disconnect answers without waiting on it.
    transaction.on_commit(lambda: enqueue_safely("recallbots.tasks.credential_delete_for_connection", connection_id))


def on_callback_secret_rotated(sender, *, connection_id: int, **kwargs) -> None:
    # Recall's customer-managed credential holds the old access-token URL: register it anew.
    credential_sync_after_connect(connection_id=connection_id)


def credentials_sync_statuses(*, recall_app: RecallOAuthApp) -> int:
    """Read every credential of an app from Recall's list (a page per call, not a call per
    credential: the list endpoint allows 60 calls a minute) and store the statuses."""
    remote = {
        body["id"]: body.get("status") or RecallCredential.Status.UNKNOWN
        for body in recall_client(base_url=recall_app.base_url).list_credentials(oauth_app=recall_app.recall_id)
    }
    now = timezone.now()
    updated = 0
    for status in set(remote.values()):
        ids = [recall_id for recall_id, value in remote.items() if value == status]
        updated += RecallCredential.objects.filter(recall_app=recall_app, recall_id__in=ids).update(
            status=status, last_synced_at=now
        )
    return updated


def credential_sync_status(*, credential: RecallCredential) -> None:
    body = recall_client(base_url=credential.recall_app.base_url).get_credential(credential.recall_id)
    credential.status = body.get("status") or RecallCredential.Status.UNKNOWN
    credential.last_synced_at = timezone.now()
    credential.save(update_fields=["status", "last_synced_at"])


# --- bots ------------------------------------------------------------------------------------


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


def _grant_until(join_at: datetime | None) -> datetime:
    """A bot's URLs end when the bot does (plus a grace period); this caps a bot that never says."""
    return (join_at or timezone.now()) + settings.BOT_URL_MAX_LIFETIME


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
    until = _grant_until(join_at)
    if Bot.TokenKind.JOIN_TOKEN in token_kinds:
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
        zoom_config["join_token_url"] = grant.callback_url(CallbackLog.Kind.JOIN_TOKEN, secret)
    own = [Bot.TokenKind(k).callback_kind for k in (Bot.TokenKind.ZAK, Bot.TokenKind.OBF) if k in token_kinds]
    if Bot.TokenKind.OBF in token_kinds and not meeting_id:
        raise LaunchError("An OBF token needs the meeting number; this link has none.")
    candidates = list(obf_candidates or ()) if Bot.TokenKind.OBF in token_kinds else []
    for candidate in candidates:
        if candidate.user_id != connection.user_id and not candidate.allow_obf_for_others:
            raise LaunchForbidden(
                f"The OBF candidate {candidate.public_id} has not allowed other users' bots "
                'to carry their OBF token. They can allow it on their connection ("OBF for other users\' bots"), '
                "or launch without them."
            )
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
            until=_grant_until(request.urls_from),
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
    bot_metadata = {str(k): str(v) for k, v in request.metadata.items()}
    if request.idempotency_key:
        Bot.release_expired_key(request.idempotency_key)
    try:
        with transaction.atomic():  # a refused launch leaves neither a bot nor URLs behind
            bot = Bot.objects.create(
                user=request.user,
                connection=connection,
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
    if presence == Bot.Presence.VISIBLE:
        return waiting.bot_wait(bot=bot, payload=payload, wait_minutes=request.wait_minutes)
    client = recall.RecallClient(max_wait=API_RECALL_MAX_WAIT) if queue_when_throttled else recall_client()
    try:
        body = _create_or_find(client, bot, payload)
    except recall.RecallRetryableError as exc:
        # An ambiguous create may have made the bot: a worker finds out (never a failed launch
        # whose URLs end under a bot that is joining).
        if not queue_when_throttled and not bot.launch_outcome_unknown:
            _launch_failed(bot, exc)
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
        _launch_failed(bot, exc)
        raise LaunchError(f"Recall did not create the bot: {exc}") from None
    _launched(bot, body)
    logger.info("bot launched", extra={"bot": bot.public_id, "recall_bot": bot.recall_id})
    return bot


def _launch_failed(bot: Bot, exc: Exception) -> None:
    bot.launch_failed(error=str(exc))
    callback_grants_end(holder=bot.callback_holder)  # no bot: its URLs end now
    if bot.previous_bot_id:  # a hand-off's successor: no API answer tells the backend, the event does
        bot_status_event(bot=bot, code=Bot.Status.LAUNCH_FAILED, sub_code=None, when=timezone.now())


def _launched(bot: Bot, body: dict) -> Bot:
    """Store what Recall created for the launch (Bot.launched: a second bot is a duplicate)."""
    changes = [
        (
            change.get("code"),
            change.get("sub_code") or "",
            _parse_time(change.get("created_at") or change.get("updated_at")) or timezone.now(),
        )
        for change in body.get("status_changes") or []
    ]
    duplicate = bot.launched(recall_id=body["id"], changes=changes)
    if duplicate is not None:
        logger.warning(
            "a second Recall bot for one launch", extra={"bot": bot.public_id, "recall_bot": duplicate.recall_id}
        )
    return bot


class LaunchUnresolved(recall.RecallRetryableError):
    """An ambiguous create's bot is not in Recall's list yet, and the list may still lag: no
    second POST before the window is over (or the bot's own webhook names the launch)."""


def _create_or_find(client: recall.RecallClient, bot: Bot, payload: dict) -> dict:
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


def _launch_lease() -> timedelta:
    """Long enough for a POST and a lookup at Recall, each within RECALL_HTTP_TIMEOUT."""
    return timedelta(seconds=3 * settings.RECALL_HTTP_TIMEOUT + 10)


def bot_create_at_recall(*, bot_id: int) -> float | None:
    """A queued launch: one try at Recall now. Returns the delay before the next try (Recall's
    Retry-After, or a backoff), or None when the launch is over (created, or failed for good).

    The launch is claimed first (a lease on launch_next_attempt_at, no row lock held while Recall
    answers), so the task's own retry and beat's catch-up never run it at once; no sleep here:
    the caller schedules the next try."""
    if not Bot.objects.claim_launch(bot_id=bot_id, lease=_launch_lease()):
        return None
    bot = Bot.objects.get(pk=bot_id)
    if _successor_outlived_its_meeting(bot):
        return None
    try:
        body = _create_or_find(recall.RecallClient(max_attempts=1), bot, json.loads(bot.queued_payload))
    except recall.RecallRetryableError as exc:
        delay = backoff(bot.launch_attempts, base=5.0, cap=300.0, retry_after=exc.retry_after)
        bot.queue_retry(retry_in=delay, error=str(exc))
        return delay
    except recall.RecallError as exc:
        _launch_failed(bot, exc)
        return None
    _launched(bot, body)
    logger.info("queued bot launched", extra={"bot": bot.public_id, "recall_bot": bot.recall_id})
    return None


def _successor_outlived_its_meeting(bot: Bot) -> bool:
    """A hand-off's successor still queued (Recall throttled it) when meeting.ended came: it is
    never sent (none after the meeting ended; a PMI's next instance is not its meeting). It ends
    `meeting_ended` with its event. Not after an ambiguous create: Recall may hold it already."""
    if bot.previous_bot_id is None or bot.connection_id is None or bot.launch_outcome_unknown:
        return False
    app_id = ZoomConnection.objects.filter(pk=bot.connection_id).values_list("app_id", flat=True).first()
    if not meeting_ended_since(app_id=app_id, meeting_id=bot.meeting_id, since=bot.created_at):
        return False
    now = timezone.now()
    with transaction.atomic():
        if not bot.end_queued_unsent(status=Bot.Status.MEETING_ENDED, at=now):
            return False
        callback_grants_end(holder=bot.callback_holder)  # no bot was sent: its URLs end now
        bot_status_event(bot=bot, code=Bot.Status.MEETING_ENDED, sub_code=None, when=now)
    logger.info("hand-off successor not sent: the meeting ended", extra={"bot": bot.public_id})
    return True


def bots_queued_due(*, grace_seconds: int = 120) -> list[int]:
    """Queued launches whose next try is overdue by `grace_seconds`: their message was lost (the
    queue was away when they were queued or rescheduled). bot_create_at_recall claims each one, so
    a message that was only late does no harm."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    overdue = Q(launch_next_attempt_at__lt=cutoff) | Q(launch_next_attempt_at__isnull=True, created_at__lt=cutoff)
    return list(Bot.objects.filter(overdue, status=Bot.Status.QUEUED).values_list("pk", flat=True)[:200])


def _parse_time(value) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parse_datetime(str(value))
    except ValueError:  # well-formed but impossible, e.g. month 13
        return None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


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
        callback_grants_reopen(holder=launch.callback_holder, until=_grant_until(launch.join_at))
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
    when = _parse_time(occurred_at) or timezone.now()
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
                "duplicate_of": str(bot.duplicate_of.public_id) if bot.duplicate_of_id else None,
                "meeting_id": bot.meeting_id,
                "connection": str(bot.connection.public_id) if bot.connection_id else None,
                "status": bot.status,
                "sub_code": bot.sub_code,
                "previous_bot": str(bot.previous_bot.public_id) if bot.previous_bot_id else None,
                "next_bot": _next_bot(bot),
            },
            "status": {"code": code, "sub_code": sub_code or None, "occurred_at": when.isoformat()},
        },
        connection_id=bot.connection_id,
    )
