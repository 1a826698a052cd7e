"""A connection's life: the OAuth connect flow (state and PKCE in the session, the code exchanged),
the grant saved (a new connection or a reconnect), the disconnect, and what Zoom's events say
about a connection (its PMI, the meetings it hosts)."""

import base64
import hashlib
import logging
import secrets
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from encrypted_model_fields.fields import decrypt_str, encrypt_str

from brokerproject.celery import enqueue_safely

from .. import signals, singleflight, token_sources, zoom
from ..models import ZoomApp, ZoomConnection, ZoomMeeting
from .grants import connection_end_secrets

logger = logging.getLogger(__name__)


SESSION_KEY = "zoom_oauth_pending"


STATE_MAX_AGE = timedelta(minutes=10)


MAX_PENDING_STATES = 5


class ConnectFlowError(Exception):
    """A failed connect attempt: what to tell the person, the HTTP status for the page, and a
    short code for the customer's return_url (`status=error&reason=<code>`)."""

    def __init__(self, message: str, *, http_status: int, reason: str = "connect_failed"):
        super().__init__(message)
        self.http_status = http_status
        self.reason = reason


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

    tokens, me = _exchange_code(app=app, code=code, code_verifier=entry["verifier"])
    return connection_save_grant(user=user, app=app, me=me, tokens=tokens)


def _exchange_code(*, app: ZoomApp, code: str, code_verifier: str) -> tuple[zoom.TokenSet, zoom.ZoomUser]:
    """Zoom's tokens for the code, and whose they are; Zoom's failures as what to tell the person."""
    try:
        tokens = zoom.exchange_code(
            client_id=app.client_id,
            client_secret=app.client_secret,
            code=code,
            redirect_uri=app.redirect_uri,
            code_verifier=code_verifier,
        )
        return tokens, zoom.get_me(access_token=tokens.access_token)
    except zoom.ZoomError as exc:
        for kind, message, status, reason in _EXCHANGE_FAILURES:
            if isinstance(exc, kind):
                if reason != "invalid_grant":  # the person's own stale link: nothing to look into
                    logger.warning("zoom connect failed (%s): %s", reason, exc, extra={"app": app.pk})
                raise ConnectFlowError(message, http_status=status, reason=reason) from None
        raise


# What the person is told when Zoom will not exchange a code, the most specific failure first.
_EXCHANGE_FAILURES: tuple[tuple[type[zoom.ZoomError], str, int, str], ...] = (
    (
        zoom.ZoomInvalidGrantError,
        "Zoom did not accept the authorization (it expired or was already used). Connect again.",
        400,
        "invalid_grant",
    ),
    (
        zoom.ZoomRetryableError,
        "Zoom is not answering right now. Wait a minute and connect again.",
        503,
        "zoom_unavailable",
    ),
    (
        zoom.ZoomPermanentError,
        "Zoom refused the connection. Check the app's credentials and scopes, then connect again.",
        502,
        "zoom_refused",
    ),
)


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
    with transaction.atomic():
        connection = ZoomConnection.objects.select_for_update().filter(
            app=app, zoom_user_id=me.id
        ).first() or ZoomConnection(app=app, zoom_user_id=me.id)
        refused, keeps_urls = _consent_outcome(connection, user)
        if not refused:
            connection.user = user
        _store_grant(connection, me=me, tokens=tokens, token_source=token_source)
        if refused:
            pass  # the owner's URLs and bots go on: the owner did nothing
        elif keeps_urls:
            pass  # the owner's reconnect: new tokens, the same URLs
        elif connection.pk:
            connection_end_secrets(connection)  # revoked before: URLs from before stay dead
        else:
            connection.rotate_callback_secret()
        connection.save()
        # In the transaction: the customer's event commits with the grant or not at all.
        if refused:
            signals.connection_claim_refused.send(
                sender=ZoomConnection, connection_id=connection.pk, claimed_by_user_id=user.pk
            )
        else:
            signals.connection_connected.send(sender=ZoomConnection, connection_id=connection.pk)
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


def _consent_outcome(connection: ZoomConnection, user) -> tuple[bool, bool]:
    """(refused: the connection is another user's, keeps_urls: the owner's reconnect)."""
    if connection.pk and connection.user_id != user.pk:
        if connection.status != ZoomConnection.Status.REVOKED:
            return True, False
        logger.info("revoked zoom connection taken by another user", extra={"connection": connection.public_id})
        return False, False
    keeps_urls = connection.status in (ZoomConnection.Status.ACTIVE, ZoomConnection.Status.NEEDS_RECONNECT)
    return False, bool(connection.pk) and keeps_urls


def _store_grant(connection: ZoomConnection, *, me: zoom.ZoomUser, tokens: zoom.TokenSet | None, token_source: str):
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
    else:  # the tokens are kept elsewhere (Recall-managed)
        connection.wipe_tokens()
        connection.activate()


def connection_disconnect(*, connection: ZoomConnection, revoke_at_zoom: bool = True, reason: str = "") -> None:
    """Wipe the tokens and keep the row as revoked, at once; the revoke at Zoom (best effort) and
    what other apps do remotely (Recall's credential) run as tasks after the commit, so this
    answers without waiting on Zoom or Recall."""
    with transaction.atomic():
        connection = ZoomConnection.objects.select_for_update().select_related("app").get(pk=connection.pk)
        token = connection.access_token or connection.refresh_token
        connection.revoke(reason=reason)
        connection_end_secrets(connection)  # a URL someone leaked must not work after a reconnect
        connection.save()
        signals.connection_disconnected.send(sender=ZoomConnection, connection_id=connection.pk)
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


def connection_update_pmi(*, connection: ZoomConnection, pmi: str) -> None:
    """Zoom says the user's personal meeting ID changed (user.updated)."""
    ZoomConnection.objects.filter(pk=connection.pk).update(pmi=pmi[:20], updated_at=timezone.now())


def meeting_record_host(*, meeting_id: str, host: ZoomConnection, topic: str = "") -> None:
    """Zoom says this connection hosts this meeting (meeting.created): join tokens come from it."""
    ZoomMeeting.objects.update_or_create(
        meeting_id=meeting_id[:20], defaults={"host_connection": host, "topic": topic[:300]}
    )
