"""Where a connection's tokens live, when not in the broker, and what happens around a connection.

zoomauth knows Zoom; it does not import the apps built on it. An app that keeps tokens elsewhere
(recallbots: Recall-managed credentials, where Recall holds the refresh token) registers a
TokenSource here from its AppConfig.ready(); apps that must act when a connection is made,
dropped or given a new callback secret connect to the signals below. So the arrows point one
way: recallbots and webhooks → zoomauth.
"""

from datetime import datetime
from typing import Protocol

from django.dispatch import Signal

# The connection signals are sent inside the transaction of the state change they report: what a
# receiver writes (the customer's event, an outbox row) commits with it or not at all. A receiver
# that calls a remote or enqueues a task does so from transaction.on_commit.
# Sent when a connection's tokens were stored (connect or reconnect).
connection_connected = Signal()  # kwargs: connection_id
# Sent when a connection was disconnected and its tokens wiped.
connection_disconnected = Signal()  # kwargs: connection_id
# Sent once when Zoom refused a connection's refresh token: its user must connect again.
connection_needs_reconnect = Signal()  # kwargs: connection_id
# Sent when another user finished a consent for a connection that is not theirs (refused).
connection_claim_refused = Signal()  # kwargs: connection_id, claimed_by_user_id
# Sent after a connection's callback secret was rotated (its callback URLs changed).
callback_secret_rotated = Signal()  # kwargs: connection_id


class TokenSourceError(Exception):
    """The remote keeper of the tokens failed; `retryable` when trying later may work."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class TokenSource(Protocol):
    def access_token(self, *, connection, timeout: float | None) -> tuple[str, datetime]:
        """A current access token and its expiry, or TokenSourceError."""

    def complete_authorization(self, *, user, app, code: str, redirect_uri: str, code_verifier: str):
        """Hand Zoom's authorization code to the remote keeper; return the saved ZoomConnection.
        Raises zoomauth.services.ConnectFlowError with what to tell the person."""


_sources: dict[str, TokenSource] = {}


def register(name: str, source: TokenSource) -> None:
    _sources[name] = source


def source_for(name: str) -> TokenSource:
    try:
        return _sources[name]
    except KeyError:
        raise TokenSourceError(f"No token source {name!r} is installed.", retryable=False) from None
