"""Tokens for Recall's callbacks: "a token of this kind, for this connection (and meeting), within
this budget". Knows nothing of HTTP; the view maps a TokenUnavailable's category to a status.

Rules:
- The access token comes from the row the caller already read; Zoom is asked only when it has
  too little life left (refreshed under the connection's lease, services/refresh.py). A callback waits
  for a refresh only as long as its budget; the refresh itself runs on to Zoom's answer.
- A Zoom 401 on a mint (Zoom killed the access token before its announced expiry) marks the
  token dead so no callback serves it again, refreshes once under the lock and mints again, all
  within the same budget. invalid_grant on that refresh means the user must reconnect.
- ZAKs are shared per connection for ZAK_SHARE_SECONDS through a single-flight: one Zoom call
  however many bots ask at once, in however many processes, and across a token refresh.
- OBF and join tokens are single-use: one Zoom call per request, by design.
"""

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from django.conf import settings

from brokerproject.retry import RetryPolicy

from . import zoom
from .models import CallbackLog, ZoomConnection
from .services.refresh import (
    ConnectionUnusable,
    RefreshPending,
    connection_fresh_access_token,
    connection_mark_access_token_rejected,
)
from .singleflight import FlightError, FlightTimeout, SingleFlight
from .token_sources import TokenSourceError

# Concurrent ZAK callbacks for one connection share one Zoom call for this long.
ZAK_SHARE_SECONDS = 60
# Recall refuses access tokens with less than this left.
RECALL_MIN_VALIDITY = timedelta(seconds=120)
# A token used to mint must outlive the minting call.
MINT_MIN_VALIDITY = timedelta(seconds=120)

# Zoom (or the token source) failing retryably is tried again after 0.1-0.2 s, 0.2-0.4 s, ... at
# most 1 s (or Zoom's Retry-After), as often as the callback's budget holds the wait with 0.5 s to spare.
ZOOM_RETRY = RetryPolicy(base=0.2, cap=1.0)
BUDGET_SPARE = 0.5

ZAK_FLIGHT = SingleFlight(share_seconds=ZAK_SHARE_SECONDS, lock_seconds=settings.CALLBACK_TIME_BUDGET + 1)

T = TypeVar("T")


class Category(enum.StrEnum):
    NOT_FOUND = "not_found"  # no usable connection, or no such meeting
    REFUSED = "refused"  # Zoom refused to mint: scope, not the host, not in the meeting
    NEEDS_RECONNECT = "needs_reconnect"
    RATE_LIMITED = "rate_limited"  # Zoom's 429 outlasted the budget
    ZOOM_FAILED = "zoom_failed"  # Zoom's (or the token source's) 5xx or a bad answer
    TIMED_OUT = "timed_out"  # the budget ran out waiting for Zoom


class TokenUnavailable(Exception):
    def __init__(self, category: Category, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.category = category
        self.retry_after = retry_after

    def as_payload(self) -> dict:
        return {"category": self.category.value, "message": str(self), "retry_after": self.retry_after}

    @classmethod
    def from_payload(cls, payload: dict) -> "TokenUnavailable":
        return cls(Category(payload["category"]), payload["message"], retry_after=payload.get("retry_after"))


NEEDS_RECONNECT = "The Zoom connection needs reconnecting by its user."


class Budget:
    """The time a callback may spend (Recall gives 5 s) and the Zoom calls it has made."""

    def __init__(self, seconds: float, *, since: float | None = None):
        """`since`: when the request arrived (time.monotonic()); the budget counts from there."""
        self.ends_at = (time.monotonic() if since is None else since) + seconds
        self.zoom_calls = 0

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()


@dataclass(frozen=True)
class TokenRequest:
    connection: ZoomConnection
    kind: str
    meeting_id: str = ""
    bypass_waiting_room: bool = False


def token_issue(*, request: TokenRequest, budget: Budget) -> str:
    """The bare token Recall asked for, or TokenUnavailable."""
    connection = request.connection
    if connection.status == ZoomConnection.Status.REVOKED:
        raise TokenUnavailable(Category.NOT_FOUND, "No usable Zoom connection: it was disconnected.")
    if connection.status == ZoomConnection.Status.NEEDS_RECONNECT:
        raise TokenUnavailable(Category.NEEDS_RECONNECT, NEEDS_RECONNECT)
    if request.kind == CallbackLog.Kind.ACCESS_TOKEN:
        return _access_token_for_recall(connection, budget)
    if request.kind == CallbackLog.Kind.ZAK:
        return _shared_zak(connection, budget)
    if request.kind == CallbackLog.Kind.OBF:
        return _mint(
            connection,
            budget,
            lambda token, timeout: zoom.get_obf_token(
                access_token=token, meeting_id=request.meeting_id, timeout=timeout
            ),
        )
    return _mint(
        connection,
        budget,
        lambda token, timeout: zoom.get_local_recording_join_token(
            access_token=token,
            meeting_id=request.meeting_id,
            bypass_waiting_room=request.bypass_waiting_room,
            timeout=timeout,
        ),
    )


# --- access tokens ---------------------------------------------------------------------------


def _access_token(connection: ZoomConnection, budget: Budget, min_validity: timedelta) -> str:
    if connection.token_source == ZoomConnection.TokenSource.LOCAL and not connection.expires_within(min_validity):
        return connection.access_token
    fresh = _within_budget(
        budget,
        lambda timeout: connection_fresh_access_token(
            connection_id=connection.pk, min_validity=min_validity, wait=timeout
        ),
    )
    budget.zoom_calls += fresh.zoom_calls
    return fresh.token


def _access_token_for_recall(connection: ZoomConnection, budget: Budget) -> str:
    try:
        return _access_token(connection, budget, settings.ACCESS_TOKEN_MIN_VALIDITY)
    except TokenUnavailable as problem:
        # Zoom failing to refresh early is no reason to fail Recall: a stored token that still
        # meets Recall's 120 s minimum (plus a little slack) is served instead.
        if problem.category not in (Category.ZOOM_FAILED, Category.RATE_LIMITED, Category.TIMED_OUT):
            raise
        stored = ZoomConnection.objects.get(pk=connection.pk)
        if stored.is_usable and not stored.expires_within(RECALL_MIN_VALIDITY + timedelta(seconds=15)):
            return stored.access_token
        raise


# --- minting ---------------------------------------------------------------------------------


def _mint(connection: ZoomConnection, budget: Budget, call: Callable[[str, float], zoom.MintedToken]) -> str:
    """Mint with the current access token; if Zoom rejects that token, refresh once and retry."""
    token = _access_token(connection, budget, MINT_MIN_VALIDITY)
    try:
        return _within_budget(budget, lambda timeout: call(token, timeout), count=True).token
    except _Rejected:
        pass
    connection_mark_access_token_rejected(connection_id=connection.pk, token_generation=connection.token_generation)
    fresh = _within_budget(
        budget,
        lambda timeout: connection_fresh_access_token(
            connection_id=connection.pk, min_validity=MINT_MIN_VALIDITY, wait=timeout
        ),
    )
    budget.zoom_calls += fresh.zoom_calls
    try:
        return _within_budget(budget, lambda timeout: call(fresh.token, timeout), count=True).token
    except _Rejected:
        raise TokenUnavailable(
            Category.ZOOM_FAILED, "Zoom rejected a freshly refreshed access token; try again.", retry_after=5
        ) from None


def _shared_zak(connection: ZoomConnection, budget: Budget) -> str:
    def mint() -> str:
        return _mint(connection, budget, lambda token, timeout: zoom.get_zak(access_token=token, timeout=timeout))

    try:
        return ZAK_FLIGHT.run(
            connection.zak_share_key,
            mint,
            wait=max(0.0, budget.remaining() - 0.2),
            on_error=_payload_for_waiters,
        )
    except FlightError as shared:
        raise TokenUnavailable.from_payload(shared.payload) from None
    except FlightTimeout:
        raise TokenUnavailable(
            Category.TIMED_OUT, "Zoom did not answer within the time budget.", retry_after=5
        ) from None


def _payload_for_waiters(exc: Exception) -> dict:
    if isinstance(exc, TokenUnavailable):
        return exc.as_payload()
    return TokenUnavailable(Category.ZOOM_FAILED, "The broker failed; try again.", retry_after=2).as_payload()


# --- Zoom calls within the budget ------------------------------------------------------------


def _wait_for_retry(budget: Budget, exc: zoom.ZoomRetryableError, attempt: int) -> float:
    """How long to wait before trying Zoom again, or TokenUnavailable when the budget cannot hold it."""
    wait = ZOOM_RETRY.wait(attempt, exc.retry_after)
    if ZOOM_RETRY.retries(attempt, wait, time_left=budget.remaining() - BUDGET_SPARE):
        return wait
    if exc.status == 429:
        raise TokenUnavailable(
            Category.RATE_LIMITED, "Zoom is rate-limiting this account; try again.", retry_after=int(wait) + 1
        ) from None
    raise TokenUnavailable(Category.ZOOM_FAILED, f"Zoom failed: {exc}.", retry_after=5) from None


class _Rejected(Exception):
    """Zoom rejected the access token (401): the caller refreshes once."""


def _within_budget(budget: Budget, fn: Callable[[float], T], *, count: bool = False) -> T:
    """Run a Zoom call within the budget, retrying 429 (honouring Retry-After) and 5xx."""
    attempt = 0
    while True:
        remaining = budget.remaining()
        if remaining < 0.3:
            raise TokenUnavailable(Category.TIMED_OUT, "Zoom did not answer within the time budget.", retry_after=5)
        attempt += 1
        try:
            result = fn(min(settings.ZOOM_HTTP_TIMEOUT, remaining - 0.2))
            budget.zoom_calls += 1 if count else 0
            return result
        except ConnectionUnusable as exc:
            if exc.status == ZoomConnection.Status.NEEDS_RECONNECT:
                raise TokenUnavailable(Category.NEEDS_RECONNECT, NEEDS_RECONNECT) from None
            raise TokenUnavailable(Category.NOT_FOUND, f"No usable Zoom connection: {exc}") from None
        except RefreshPending:
            # The refresh goes on without us (it must: Zoom may have rotated the refresh token).
            raise TokenUnavailable(
                Category.TIMED_OUT, "Zoom is slow to refresh this connection's token; try again.", retry_after=3
            ) from None
        except zoom.ZoomRetryableError as exc:
            budget.zoom_calls += 1
            time.sleep(_wait_for_retry(budget, exc, attempt))
        except TokenSourceError as exc:
            # Where the tokens live (Recall, for Recall-managed connections) failed: its error,
            # not Zoom's. Retried within the budget when it may pass.
            wait = ZOOM_RETRY.wait(attempt, exc.retry_after)
            if not exc.retryable or not ZOOM_RETRY.retries(attempt, wait, time_left=budget.remaining() - BUDGET_SPARE):
                raise TokenUnavailable(Category.ZOOM_FAILED, f"{exc}.", retry_after=5) from None
            time.sleep(wait)
        except zoom.ZoomAccessTokenRejectedError:
            budget.zoom_calls += 1
            raise _Rejected() from None
        except zoom.ZoomNotFoundError:
            budget.zoom_calls += 1
            raise TokenUnavailable(Category.NOT_FOUND, "Zoom says this meeting does not exist.") from None
        except zoom.ZoomInvalidGrantError:
            budget.zoom_calls += 1
            raise TokenUnavailable(Category.NEEDS_RECONNECT, NEEDS_RECONNECT) from None
        except zoom.ZoomPermanentError as exc:
            budget.zoom_calls += 1
            raise TokenUnavailable(Category.REFUSED, f"Zoom refused to make the token: {exc}.") from None
