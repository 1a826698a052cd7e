"""Where a connection's tokens live, when not in the broker, and what happens around a connection.

zoomauth knows Zoom; it does not import the apps built on it. An app that keeps tokens elsewhere
(recallbots: Recall-managed credentials, where Recall holds the refresh token) registers a
TokenSource here from its AppConfig.ready(); apps that must act when a connection is made,
dropped or given a new callback secret connect to the signals in signals.py. So the arrows point one
way: recallbots and webhooks → zoomauth.
"""

from datetime import datetime
from typing import Protocol

# The connection signals live in signals.py; recallbots and webhooks still connect to them by
# these names.
from .signals import (  # noqa: F401
    callback_secret_rotated,
    connection_claim_refused,
    connection_connected,
    connection_disconnected,
    connection_needs_reconnect,
)


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
        Raises zoomauth.services.connect.ConnectFlowError with what to tell the person."""


_sources: dict[str, TokenSource] = {}


def register(name: str, source: TokenSource) -> None:
    _sources[name] = source


def source_for(name: str) -> TokenSource:
    try:
        return _sources[name]
    except KeyError:
        raise TokenSourceError(f"No token source {name!r} is installed.", retryable=False) from None
