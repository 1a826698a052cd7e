import base64
import hashlib
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections as db_connections
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from encrypted_model_fields.fields import decrypt_str, encrypt_str

from brokerproject import metrics
from brokerproject.celery import enqueue_safely
from brokerproject.crypto import secret_hash
from brokerproject.dbpool import hand_back_connection

from .. import singleflight, token_sources, zoom
from ..models import CallbackGrant, ZoomApp, ZoomConnection, ZoomMeeting

logger = logging.getLogger(__name__)

SESSION_KEY = "zoom_oauth_pending"
STATE_MAX_AGE = timedelta(minutes=10)
MAX_PENDING_STATES = 5


class ConnectionUnusable(Exception):
    """The connection cannot produce tokens now (needs reconnect, revoked, or missing)."""

    def __init__(self, message: str, *, status: str):
        super().__init__(message)
        self.status = status


class ConnectFlowError(Exception):
    """A failed connect attempt: what to tell the person, the HTTP status for the page, and a
    short code for the customer's return_url (`status=error&reason=<code>`)."""

    def __init__(self, message: str, *, http_status: int, reason: str = "connect_failed"):
        super().__init__(message)
        self.http_status = http_status
        self.reason = reason


@dataclass(frozen=True)
class FreshToken:
    token: str
    expires_at: datetime
    zoom_calls: int = 0

    def __repr__(self) -> str:
        return f"FreshToken(expires_at={self.expires_at.isoformat()}, zoom_calls={self.zoom_calls})"


# --- connect flow ----------------------------------------------------------------------------


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def connection_start_authorization(
    *, session, app: ZoomApp, for_user_id: int | None = None, return_url: str = ""
) -> str:
    """Remember a single-use state and PKCE verifier in the session; return Zoom's authorize URL.

    `for_user_id` and `return_url` come from a connect session (a link made by the customer's
    backend): the grant goes to that user without a sign-in, and the browser goes back to
    `return_url` afterwards."""
    state = secrets.token_urlsafe(32)
    verifier, challenge = _pkce_pair()
    pending = session.get(SESSION_KEY, {})
    # Keep the few newest, so two tabs work but the session cannot grow without bound.
    newest = sorted(pending.items(), key=lambda item: item[1]["created_at"])[-(MAX_PENDING_STATES - 1) :]
    pending = dict(newest)
    pending[state] = {
        "app_id": app.pk,
        "verifier": verifier,
        "created_at": time.time(),
        "user_id": for_user_id,
        "return_url": return_url,
    }
    session[SESSION_KEY] = pending
    return zoom.authorize_url(
        client_id=app.client_id, redirect_uri=app.redirect_uri, state=state, code_challenge=challenge
    )


def connection_pending(*, session, state: str) -> dict | None:
    """The pending attempt for `state`, left in place (to know whom it is for before finishing)."""
    return session.get(SESSION_KEY, {}).get(state) if state else None


def connection_abandon_authorization(*, session, state: str) -> dict | None:
    """Zoom sent the user back without a code (denied, or an error): forget the attempt."""
    pending = session.get(SESSION_KEY, {})
    entry = pending.pop(state, None) if state else None
    session[SESSION_KEY] = pending
    return entry


def _pop_pending(session, state: str) -> dict:
    pending = session.get(SESSION_KEY, {})
    entry = pending.pop(state, None) if state else None
    session[SESSION_KEY] = pending
    if entry is None:
        raise ConnectFlowError(
            "This sign-in link is unknown or was already used. Start the connection again from this site.",
            http_status=400,
            reason="invalid_state",
        )
    if time.time() - entry["created_at"] > STATE_MAX_AGE.total_seconds():
        raise ConnectFlowError(
            "This sign-in attempt expired. Start the connection again.", http_status=400, reason="expired"
        )
    return entry


def connection_complete_authorization(*, session, user, state: str, code: str) -> ZoomConnection:
    entry = _pop_pending(session, state)
    if entry.get("user_id"):
        user = get_user_model().objects.filter(pk=entry["user_id"]).first()
        if user is None:
            raise ConnectFlowError("This connect link's user no longer exists.", http_status=400, reason="no_user")
    if not code:
        raise ConnectFlowError(
            "Zoom sent no authorization code. Start the connection again.", http_status=400, reason="no_code"
        )
    app = ZoomApp.objects.filter(pk=entry["app_id"]).first()
    if app is None:
        raise ConnectFlowError(
            "This Zoom app no longer exists. Ask an administrator.", http_status=400, reason="no_app"
        )

    if app.credential_mode == ZoomApp.CredentialMode.RECALL_MANAGED:
        # The code goes to the keeper of the tokens (Recall), which exchanges it itself.
        try:
            source = token_sources.source_for(ZoomConnection.TokenSource.RECALL)
        except token_sources.TokenSourceError:
            raise ConnectFlowError(
                "Recall-managed connections are not available here. Ask an administrator.", http_status=503
            ) from None
        return source.complete_authorization(
            user=user, app=app, code=code, redirect_uri=app.redirect_uri, code_verifier=entry["verifier"]
        )

    try:
        tokens = zoom.exchange_code(
            client_id=app.client_id,
            client_secret=app.client_secret,
            code=code,
            redirect_uri=app.redirect_uri,
            code_verifier=entry["verifier"],
        )
        me = zoom.get_me(access_token=tokens.access_token)
    except zoom.ZoomInvalidGrantError:
        raise ConnectFlowError(
            "Zoom did not accept the authorization (it expired or was already used). Connect again.",
            http_status=400,
            reason="invalid_grant",
        ) from None
    except zoom.ZoomRetryableError as exc:
        logger.warning("zoom connect failed: %s", exc, extra={"app": app.pk})
        raise ConnectFlowError(
            "Zoom is not answering right now. Wait a minute and connect again.",
            http_status=503,
            reason="zoom_unavailable",
        ) from None
    except zoom.ZoomPermanentError as exc:
        logger.warning("zoom connect refused: %s", exc, extra={"app": app.pk})
        raise ConnectFlowError(
            "Zoom refused the connection. Check the app's credentials and scopes, then connect again.",
            http_status=502,
            reason="zoom_refused",
        ) from None

    return connection_save_grant(user=user, app=app, me=me, tokens=tokens)


def connection_save_grant(
    *, user, app: ZoomApp, me: zoom.ZoomUser, tokens: zoom.TokenSet | None, token_source: str = "local"
) -> ZoomConnection:
    """Create the connection, or replace the tokens of the existing one (reconnect).

    A Zoom account connected for one of the customer's users is never moved to another by a
    consent (a forwarded or phished connect link): the new tokens (the same Zoom user's) go to the
    owner's connection, the owner is told (connection_claim_refused) and the person who finished
    the consent gets ConnectFlowError. A revoked connection may be connected by anyone.

    The owner's consent on a connection that is active or needs reconnecting keeps what works: the
    callback secret and every bot's URLs stay (bots scheduled before fetch valid tokens after it).
    A revoked connection, or one taken by another user, starts over with a new secret."""
    refused = False
    keeps_urls = False
    with transaction.atomic():
        connection = ZoomConnection.objects.select_for_update().filter(
            app=app, zoom_user_id=me.id
        ).first() or ZoomConnection(app=app, zoom_user_id=me.id)
        if connection.pk and connection.user_id != user.pk:
            if connection.status != ZoomConnection.Status.REVOKED:
                refused = True
            else:
                logger.info("revoked zoom connection taken by another user", extra={"connection": connection.public_id})
        elif connection.pk:
            keeps_urls = connection.status in (ZoomConnection.Status.ACTIVE, ZoomConnection.Status.NEEDS_RECONNECT)
        if not refused:
            connection.user = user
        connection.zoom_account_id = me.account_id
        connection.email = me.email
        connection.pmi = me.pmi
        connection.token_source = token_source
        if tokens is not None:
            connection.store_tokens(
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token,
                expires_in=tokens.expires_in,
                scope=tokens.scope,
            )
        else:
            connection.wipe_tokens()
            connection.activate()
        if refused:
            pass  # the owner's URLs and bots go on: the owner did nothing
        elif keeps_urls:
            pass  # the owner's reconnect: new tokens, the same URLs
        elif connection.pk:
            _end_connection_secrets(connection)  # revoked before: URLs from before stay dead
        else:
            connection.rotate_callback_secret()
        connection.save()
        # In the transaction: the customer's event commits with the grant or not at all.
        if refused:
            token_sources.connection_claim_refused.send(
                sender=ZoomConnection, connection_id=connection.pk, claimed_by_user_id=user.pk
            )
        else:
            token_sources.connection_connected.send(sender=ZoomConnection, connection_id=connection.pk)
    singleflight.forget(connection.zak_share_key)
    if refused:
        logger.warning("zoom connection claimed by another user: refused", extra={"connection": connection.public_id})
        raise ConnectFlowError(
            "This Zoom account is already connected for another user of this service, so it was not moved to "
            "you. Its owner has been told. If it should be yours, ask them (or an administrator) to disconnect "
            "it first, then connect again.",
            http_status=409,
            reason="connected_to_another_user",
        )
    logger.info("zoom connection saved", extra={"connection": connection.public_id, "app": app.pk})
    return connection


def connection_disconnect(*, connection: ZoomConnection, revoke_at_zoom: bool = True, reason: str = "") -> None:
    """Wipe the tokens and keep the row as revoked, at once; the revoke at Zoom (best effort) and
    what other apps do remotely (Recall's credential) run as tasks after the commit, so this
    answers without waiting on Zoom or Recall."""
    with transaction.atomic():
        connection = ZoomConnection.objects.select_for_update().select_related("app").get(pk=connection.pk)
        token = connection.access_token or connection.refresh_token
        connection.revoke(reason=reason)
        _end_connection_secrets(connection)  # a URL someone leaked must not work after a reconnect
        connection.save()
        token_sources.connection_disconnected.send(sender=ZoomConnection, connection_id=connection.pk)
        if revoke_at_zoom and token and connection.token_source == ZoomConnection.TokenSource.LOCAL:
            sealed = encrypt_str(token).decode()  # the queue holds ciphertext only
            app_id = connection.app_id
            transaction.on_commit(lambda: enqueue_safely("zoomauth.tasks.token_revoke_at_zoom", app_id, sealed))
    singleflight.forget(connection.zak_share_key)
    logger.info("zoom connection disconnected", extra={"connection": connection.public_id})


def token_revoke_at_zoom(*, app_id: int, sealed_token: str) -> None:
    """Revoke a disconnected connection's grant at Zoom. ZoomRetryableError is the task's to retry."""
    app = ZoomApp.objects.filter(pk=app_id).first()
    if app is None:
        return
    try:
        zoom.revoke_token(client_id=app.client_id, client_secret=app.client_secret, token=decrypt_str(sealed_token))
    except zoom.ZoomPermanentError as exc:
        logger.info("zoom revoke refused (ignored): %s", exc, extra={"app": app_id})


def connection_rotate_callback_secret(*, connection: ZoomConnection) -> str:
    """A new callback secret: the old URLs stop working at once. Apps holding the URLs (Recall's
    customer-managed credential) are told through callback_secret_rotated."""
    raw = connection.rotate_callback_secret()
    connection.save(
        update_fields=["callback_secret", "callback_secret_hash", "callback_secret_rotated_at", "updated_at"]
    )
    transaction.on_commit(
        lambda: token_sources.callback_secret_rotated.send(sender=ZoomConnection, connection_id=connection.pk)
    )
    return raw


# --- who sees callback URLs -----------------------------------------------------------------


def record_reveal(*, user, connections: list[ZoomConnection], where: str) -> None:
    """Someone saw these connections' full callback URLs: written to each one's history (the
    admin's log: who and when)."""
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    if not connections:
        return
    content_type = ContentType.objects.get_for_model(ZoomConnection)
    LogEntry.objects.bulk_create(
        LogEntry(
            user_id=user.pk,
            content_type=content_type,
            object_id=str(connection.pk),
            object_repr=str(connection)[:200],
            action_flag=CHANGE,
            change_message=f"Revealed the callback URLs (with their secret) {where}.",
        )
        for connection in connections
    )


SHARING_SETTINGS = {
    "allow_join_tokens_for_others": "join tokens for other users' bots",
    "allow_obf_for_others": "OBF for other users' bots",
}


def connection_set_sharing(*, connection: ZoomConnection, by_user, changes: dict[str, bool], where: str) -> None:
    """The owner's choice to lend this grant to other users' bots (set by the owner, or relayed by
    the customer's backend): saved, and each change written to the connection's history."""
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    changed = {name: value for name, value in changes.items() if getattr(connection, name) != value}
    if not changed:
        return
    for name, value in changed.items():
        setattr(connection, name, value)
    connection.save(update_fields=[*changed, "updated_at"])
    LogEntry.objects.bulk_create(
        LogEntry(
            user_id=by_user.pk,
            content_type=ContentType.objects.get_for_model(ZoomConnection),
            object_id=str(connection.pk),
            object_repr=str(connection)[:200],
            action_flag=CHANGE,
            change_message=f"Set “{SHARING_SETTINGS[name]}” {'on' if value else 'off'} {where}.",
        )
        for name, value in changed.items()
    )


# --- bots' own callback credentials ----------------------------------------------------------


def callback_grant_issue(
    *,
    connection: ZoomConnection,
    kinds: list[str],
    meeting_id: str,
    holder: str,
    until: datetime,
    bypass_waiting_room: bool = False,
    obf_candidates: list[ZoomConnection] | None = None,
) -> tuple[CallbackGrant, str]:
    """A credential for one bot's token URLs: these kinds, from this connection, for this
    meeting, until `until` (ended earlier by callback_grants_end). Returns it and its secret,
    which is kept only hashed."""
    raw = secrets.token_urlsafe(32)
    grant = CallbackGrant.objects.create(
        connection=connection,
        secret_hash=secret_hash(raw),
        kinds=sorted(set(kinds)),
        meeting_id=meeting_id[:20],
        holder=holder[:100],
        expires_at=until,
        bypass_waiting_room=bypass_waiting_room,
        obf_candidates=[candidate.pk for candidate in obf_candidates or ()],
    )
    return grant, raw


def callback_grants_end(*, holder: str, grace: timedelta = timedelta(0)) -> int:
    """The holder (a bot) ended: its URLs work for `grace` more, then never again."""
    until = timezone.now() + grace
    return CallbackGrant.objects.filter(holder=holder[:100], expires_at__gt=until).update(expires_at=until)


def callback_grants_reopen(*, holder: str, until: datetime) -> int:
    """The holder turned out to exist after all (a bot whose create answer was lost): its URLs
    work again, while their connection's secret has not changed since."""
    return (
        CallbackGrant.objects.filter(holder=holder[:100], created_at__gte=F("connection__callback_secret_rotated_at"))
        .filter(connection__status=ZoomConnection.Status.ACTIVE)
        .update(expires_at=until)
    )


def _end_connection_secrets(connection: ZoomConnection) -> None:
    """Revoke, or a revoked connection connected again: every URL made before (the connection's
    and its bots') stops working."""
    connection.rotate_callback_secret()
    CallbackGrant.objects.filter(connection=connection).live().update(expires_at=timezone.now())


# --- fresh tokens ----------------------------------------------------------------------------


def _recover_from_invalid_grant(
    *, connection_id: int, sent_generation: int, min_validity: timedelta, holder: uuid.UUID
) -> FreshToken:
    """Zoom said invalid_grant. If someone else rotated the tokens meanwhile, it was a lost race:
    use the winner's tokens. If not, and the lease is still ours, the grant is dead and the user
    must reconnect. A holder whose lease was taken over marks nothing: the new holder's answer
    (it may hold the live tokens) decides."""
    connection = ZoomConnection.objects.get(pk=connection_id)
    if connection.token_generation != sent_generation:
        ZoomConnection.objects.release_refresh_lease(connection_id=connection_id, holder=holder)
        if connection.is_usable and not connection.expires_within(min_validity):
            logger.info("refresh race lost; using the winner's token", extra={"connection": connection.public_id})
            return FreshToken(connection.access_token, connection.access_token_expires_at, zoom_calls=1)
        raise ConnectionUnusable("The connection changed while refreshing; try again.", status=connection.status)
    with transaction.atomic():
        marked = ZoomConnection.objects.mark_needs_reconnect(
            connection_id=connection_id,
            token_generation=sent_generation,
            holder=holder,
            reason="Zoom refused the refresh token (invalid_grant): the user must reconnect.",
        )
        if marked:
            # In the same transaction: what the receivers record (the customer's event) commits
            # with the state change or not at all.
            token_sources.connection_needs_reconnect.send(sender=ZoomConnection, connection_id=connection_id)
    if not marked:
        logger.warning(
            "refresh outlived its lease; invalid_grant left to the new holder", extra={"connection_id": connection_id}
        )
        raise RefreshLeaseLost("This refresh outlived its lease; another refresh of the connection decides.")
    logger.warning("zoom grant is dead; connection needs reconnect", extra={"connection": connection.public_id})
    raise ConnectionUnusable("The Zoom connection must be reconnected.", status=ZoomConnection.Status.NEEDS_RECONNECT)


class RefreshPending(zoom.ZoomRetryableError):
    """A refresh of this connection is still running (in this process or another one) and the
    caller's wait is over. The refresh itself goes on to its end and stores what Zoom answers."""


class RefreshLeaseLost(zoom.ZoomRetryableError):
    """This refresh's lease was taken by another holder before its answer could be stored: the
    answer is not stored and the lease is not touched (only the holder may store or release)."""


# How long a refresh lease holds: the refresh's own deadline (ZOOM_REFRESH_TIMEOUT, one total
# deadline for the whole request, enforced by zoom.refresh_tokens) plus the margin to store its
# answer. A process killed mid-refresh blocks the next refresh of that connection this long.
def _lease_seconds() -> float:
    return settings.ZOOM_REFRESH_TIMEOUT + settings.ZOOM_REFRESH_LEASE_MARGIN_SECONDS


REFRESH_POLL_SECONDS = 0.1


class _Refreshes:
    """Refreshes detached from the callers that asked for them: a callback waits up to its budget
    for the result, the refresh runs on in a thread of this process until Zoom answers (or
    ZOOM_REFRESH_TIMEOUT passes). Callers in this process asking for the same connection share
    one future. Its threads are joined when the process exits: a web server told to stop waits for
    a refresh in flight for up to gunicorn's graceful_timeout (docker/gunicorn.conf.py: the
    refresh timeout plus the lease margin), and compose's stop_grace_period is longer still."""

    def __init__(self, max_workers: int = 32):
        self.max_workers = max_workers
        self.lock = threading.Lock()
        self.running: dict[int, Future] = {}
        self.pool: ThreadPoolExecutor | None = None
        self.pid = 0

    def submit(self, connection_id: int, fn: Callable[[], FreshToken]) -> Future:
        with self.lock:
            if self.pool is None or self.pid != os.getpid():  # made lazily, after the server forks
                self.pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="zoom-refresh")
                self.running = {}
                self.pid = os.getpid()
            future = self.running.get(connection_id)
            if future is None:
                future = self.pool.submit(self._run, connection_id, fn)
                self.running[connection_id] = future
            return future

    def _run(self, connection_id: int, fn: Callable[[], FreshToken]) -> FreshToken:
        try:
            return fn()
        finally:
            with self.lock:
                self.running.pop(connection_id, None)
            db_connections.close_all()  # this thread's own database connection


_refreshes = _Refreshes()


def connection_fresh_access_token(
    *,
    connection_id: int,
    min_validity: timedelta,
    refresh_if_refreshed_before: datetime | None = None,
    wait: float | None = None,
) -> FreshToken:
    """An access token valid for at least `min_validity`, refreshing at most once across processes.

    `wait` is how long the caller can wait (a callback's budget); None waits for the refresh to
    end (beat's tasks). The refresh is never bound by `wait`: it runs with ZOOM_REFRESH_TIMEOUT
    and stores Zoom's answer even when the caller has gone (RefreshPending), because Zoom
    rotates the refresh token when it answers and the one sent is dead from then on.
    """
    connection = ZoomConnection.objects.select_related("app").get(pk=connection_id)
    if not connection.is_usable:
        raise ConnectionUnusable(
            f"The Zoom connection is {connection.get_status_display().lower()}.", status=connection.status
        )
    if connection.token_source != ZoomConnection.TokenSource.LOCAL:
        token, expires_at = token_sources.source_for(connection.token_source).access_token(
            connection=connection, timeout=wait
        )
        return FreshToken(token, expires_at)
    if _fresh_enough(connection, min_validity, refresh_if_refreshed_before):
        return FreshToken(connection.access_token, connection.access_token_expires_at)

    def refresh() -> FreshToken:
        return _refresh(
            connection_id=connection_id,
            min_validity=min_validity,
            refresh_if_refreshed_before=refresh_if_refreshed_before,
        )

    if wait is None:
        return refresh()
    future = _refreshes.submit(connection_id, refresh)
    hand_back_connection()  # the wait may last the caller's whole budget
    try:
        return future.result(timeout=max(0.0, wait))
    except FutureTimeout:
        raise RefreshPending("Zoom is still answering this connection's refresh.", retry_after=3) from None


def _fresh_enough(connection: ZoomConnection, min_validity: timedelta, refreshed_before: datetime | None) -> bool:
    if connection.expires_within(min_validity):
        return False
    return refreshed_before is None or (
        connection.last_refreshed_at is not None and connection.last_refreshed_at >= refreshed_before
    )


def _refresh(
    *, connection_id: int, min_validity: timedelta, refresh_if_refreshed_before: datetime | None
) -> FreshToken:
    """Refresh under the connection's lease, or wait for the holder of the lease to finish.

    The lease is a conditional UPDATE of `refresh_started_at` by the database's clock, with this
    attempt's id in `refresh_lease_holder`; not a row lock: Zoom may take up to
    ZOOM_REFRESH_TIMEOUT, and no transaction stays open while it does. The refresh token sent is
    the one of the generation the lease was taken on; the answer is stored only on that
    generation and only while the lease is still this attempt's, so a disconnect or reconnect
    meanwhile is never overwritten and a lease taken over is never trampled.
    """
    deadline = time.monotonic() + _lease_seconds() + 5
    first_generation = None
    holder = uuid.uuid4()
    while True:
        connection = ZoomConnection.objects.select_related("app").get(pk=connection_id)
        if not connection.is_usable:
            raise ConnectionUnusable("The Zoom connection must be reconnected.", status=connection.status)
        if first_generation is None:
            first_generation = connection.token_generation
        elif connection.token_generation != first_generation and not connection.expires_within(timedelta(0)):
            # Someone else refreshed while we waited: theirs is the token.
            return FreshToken(connection.access_token, connection.access_token_expires_at)
        if _fresh_enough(connection, min_validity, refresh_if_refreshed_before):
            return FreshToken(connection.access_token, connection.access_token_expires_at)
        now = timezone.now()
        if connection.refresh_not_before and connection.refresh_not_before > now:
            wait = (connection.refresh_not_before - now).total_seconds()
            raise zoom.ZoomRetryableError(
                "Zoom asked the broker to wait before refreshing again.", status=429, retry_after=wait
            )
        if ZoomConnection.objects.take_refresh_lease(
            connection_id=connection.pk,
            token_generation=connection.token_generation,
            holder=holder,
            seconds=_lease_seconds(),
        ):
            leased_at = time.monotonic()
            break
        if time.monotonic() > deadline:
            raise zoom.ZoomRetryableError("Another refresh of this connection is still running.", retry_after=5)
        hand_back_connection()
        time.sleep(REFRESH_POLL_SECONDS)
    return _refresh_holding_lease(connection, holder=holder, leased_at=leased_at)


def _refresh_holding_lease(connection: ZoomConnection, *, holder: uuid.UUID, leased_at: float) -> FreshToken:
    sent_generation = connection.token_generation
    hand_back_connection()  # Zoom may take up to ZOOM_REFRESH_TIMEOUT
    # The deadline counts from the lease, so the answer always arrives inside the lease's margin.
    remaining = settings.ZOOM_REFRESH_TIMEOUT - (time.monotonic() - leased_at)
    try:
        tokens = zoom.refresh_tokens(
            client_id=connection.app.client_id,
            client_secret=connection.app.client_secret,
            refresh_token=connection.refresh_token,
            timeout=max(remaining, 1.0),
        )
    except zoom.ZoomInvalidGrantError:
        metrics.REFRESHES.labels("invalid_grant").inc()
        return _recover_from_invalid_grant(
            connection_id=connection.pk, sent_generation=sent_generation, min_validity=timedelta(0), holder=holder
        )
    except zoom.ZoomError as exc:
        # Also when Zoom's answer was lost (a timeout, a dropped connection): Zoom may have
        # rotated the refresh token. The next attempt sends it again, once this request can no
        # longer succeed (the client's deadline has closed it); if Zoom did rotate, that attempt's
        # invalid_grant marks the connection needs_reconnect (and tells the customer), which is
        # the truth of it.
        metrics.REFRESHES.labels("error").inc()
        retry_after = getattr(exc, "retry_after", None)
        not_before = timezone.now() + timedelta(seconds=retry_after) if exc.status == 429 and retry_after else None
        ZoomConnection.objects.release_refresh_lease(
            connection_id=connection.pk, holder=holder, failure=str(exc), not_before=not_before
        )
        raise
    stored = connection_store_refreshed_tokens(
        connection_id=connection.pk, holder=holder, sent_generation=sent_generation, tokens=tokens
    )
    metrics.REFRESHES.labels("ok").inc()
    logger.info("zoom token refreshed", extra={"connection": stored.public_id})
    return FreshToken(stored.access_token, stored.access_token_expires_at, zoom_calls=1)


def connection_store_refreshed_tokens(
    *, connection_id: int, holder: uuid.UUID, sent_generation: int, tokens: zoom.TokenSet
) -> ZoomConnection:
    """Store Zoom's refreshed tokens, only on the generation they were sent for and only while the
    lease is still `holder`'s (the fence)."""
    try:
        with transaction.atomic():
            stored = ZoomConnection.objects.select_for_update().get(pk=connection_id)
            if stored.refresh_lease_holder != holder:
                logger.warning("refresh outlived its lease: answer not stored", extra={"connection": stored.public_id})
                raise RefreshLeaseLost("This refresh outlived its lease; its answer was not stored.")
            if stored.token_generation != sent_generation or not stored.is_usable:
                # Disconnected or reconnected while Zoom answered: that grant is no longer ours.
                ZoomConnection.objects.release_refresh_lease(connection_id=connection_id, holder=holder)
                raise ConnectionUnusable("The connection changed while refreshing.", status=stored.status)
            stored.store_tokens(
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token,
                expires_in=tokens.expires_in,
                scope=tokens.scope,
            )
            stored.save()
    except (ConnectionUnusable, RefreshLeaseLost):
        raise
    except Exception:
        ZoomConnection.objects.release_refresh_lease(
            connection_id=connection_id, holder=holder, failure="Storing Zoom's refreshed tokens failed."
        )
        raise
    return stored


def connection_mark_access_token_rejected(*, connection_id: int, token_generation: int) -> bool:
    """Zoom refused this access token before its announced expiry: no callback may serve it again.

    Marked by moving its expiry to now, only while it is still the same token (a concurrent
    refresh may already have replaced it); the next caller then refreshes under the row lock.
    """
    marked = ZoomConnection.objects.mark_token_rejected(connection_id=connection_id, token_generation=token_generation)
    if marked:
        logger.warning("zoom rejected an access token early", extra={"connection_id": connection_id})
    return marked


def connection_refresh_if_due(*, connection_id: int) -> bool:
    """Beat's per-connection job. Idempotent: a connection that is not due is left alone."""
    now = timezone.now()
    connection = ZoomConnection.objects.filter(pk=connection_id).first()
    if connection is None or not connection.is_usable or connection.token_source != ZoomConnection.TokenSource.LOCAL:
        return False
    keepalive_due = (
        connection.last_refreshed_at is None or connection.last_refreshed_at < now - settings.ZOOM_REFRESH_KEEPALIVE
    )
    result = connection_fresh_access_token(
        connection_id=connection_id,
        min_validity=settings.ZOOM_REFRESH_WINDOW,
        refresh_if_refreshed_before=now - settings.ZOOM_REFRESH_KEEPALIVE if keepalive_due else None,
    )
    return result.zoom_calls > 0


def connection_for_zoom_user(*, app: ZoomApp, zoom_user_id: str) -> ZoomConnection | None:
    return ZoomConnection.objects.filter(app=app, zoom_user_id=zoom_user_id).first() if zoom_user_id else None


def connection_update_pmi(*, connection: ZoomConnection, pmi: str) -> None:
    """Zoom says the user's personal meeting ID changed (user.updated)."""
    ZoomConnection.objects.filter(pk=connection.pk).update(pmi=pmi[:20], updated_at=timezone.now())


def meeting_record_host(*, meeting_id: str, host: ZoomConnection, topic: str = "") -> None:
    """Zoom says this connection hosts this meeting (meeting.created): join tokens come from it."""
    ZoomMeeting.objects.update_or_create(
        meeting_id=meeting_id[:20], defaults={"host_connection": host, "topic": topic[:300]}
    )


def connection_for_meeting(*, meeting_id: str) -> ZoomConnection | None:
    """The host's connection for a meeting: meeting.created mapping first, then the PMI."""
    mapping = ZoomMeeting.objects.select_related("host_connection").filter(meeting_id=meeting_id).first()
    if mapping is not None:
        return mapping.host_connection
    return ZoomConnection.objects.filter(pmi=meeting_id).exclude(status=ZoomConnection.Status.REVOKED).first()


def connection_gauges():
    """/metrics, read at each scrape: connections by status (whichever process changed them)."""
    from django.db.models import Count
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily("broker_connections", "Zoom connections by status.", labels=["status"])
    counts = dict(ZoomConnection.objects.values_list("status").annotate(n=Count("pk")))
    for status in ZoomConnection.Status.values:
        family.add_metric([status], counts.get(status, 0))
    yield family
