"""The refresh engine: an access token fresh enough for its caller, refreshed at most once at a time
per connection across processes (a lease on the row, by the database's clock), and what Zoom's
answer changes (rotated tokens stored, or the grant dead and the connection needs reconnect)."""

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections as db_connections
from django.db import transaction
from django.utils import timezone

from brokerproject import metrics
from brokerproject.dbpool import hand_back_connection

from .. import signals, token_sources, zoom
from ..models import ZoomConnection

logger = logging.getLogger(__name__)


class ConnectionUnusable(Exception):
    """The connection cannot produce tokens now (needs reconnect, revoked, or missing)."""

    def __init__(self, message: str, *, status: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FreshToken:
    token: str
    expires_at: datetime
    zoom_calls: int = 0

    def __repr__(self) -> str:
        return f"FreshToken(expires_at={self.expires_at.isoformat()}, zoom_calls={self.zoom_calls})"


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
        return _stored_token(connection)

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


def _stored_token(connection: ZoomConnection) -> FreshToken:
    """The connection's stored access token; only after expires_within() said no, so its expiry
    is known."""
    expires_at = connection.access_token_expires_at
    assert expires_at is not None, "an access token without an expiry counts as expiring"
    return FreshToken(connection.access_token, expires_at)


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
            return _stored_token(connection)
        if _fresh_enough(connection, min_validity, refresh_if_refreshed_before):
            return _stored_token(connection)
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
    assert stored.access_token_expires_at is not None  # store_tokens set it
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


# After Zoom's invalid_grant could not be recorded: how long before the next refresh may ask Zoom.
RECORD_FAILED_PAUSE_SECONDS = 5.0


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
        expires_at = connection.access_token_expires_at
        # expires_within is true of a token without an expiry: this tells the checker so.
        if connection.is_usable and expires_at is not None and not connection.expires_within(min_validity):
            logger.info("refresh race lost; using the winner's token", extra={"connection": connection.public_id})
            return FreshToken(connection.access_token, expires_at, zoom_calls=1)
        raise ConnectionUnusable("The connection changed while refreshing; try again.", status=connection.status)
    try:
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
                signals.connection_needs_reconnect.send(sender=ZoomConnection, connection_id=connection_id)
    except Exception:
        # Zoom has answered, so nothing is in flight: the next attempt may ask again after a short
        # pause instead of waiting out the lease (callbacks answer 503 meanwhile); the pause keeps a
        # lasting fault from sending every callback's refresh to Zoom.
        ZoomConnection.objects.release_refresh_lease(
            connection_id=connection_id,
            holder=holder,
            failure="Recording the dead grant failed.",
            not_before=timezone.now() + timedelta(seconds=RECORD_FAILED_PAUSE_SECONDS),
        )
        raise
    if not marked:
        logger.warning(
            "refresh outlived its lease; invalid_grant left to the new holder", extra={"connection_id": connection_id}
        )
        raise RefreshLeaseLost("This refresh outlived its lease; another refresh of the connection decides.")
    logger.warning("zoom grant is dead; connection needs reconnect", extra={"connection": connection.public_id})
    raise ConnectionUnusable("The Zoom connection must be reconnected.", status=ZoomConnection.Status.NEEDS_RECONNECT)


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
