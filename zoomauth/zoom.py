"""Zoom OAuth and REST client. Knows nothing of the broker's models.

Errors come in two kinds: ZoomPermanentError (the grant or request is bad: the user must
reconnect, or the meeting does not exist) and ZoomRetryableError (timeouts, 429, 5xx).
Messages never carry token material. A refresh's one total deadline is kept by
zoomauth/zoom_deadline.py.
"""

import base64
import re
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings

from brokerproject import http, metrics
from brokerproject.http import parse_retry_after
from brokerproject.logging import mask_secrets

from .zoom_deadline import request_by_deadline

SESSION = http.session()

AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"
REVOKE_PATH = "/oauth/revoke"


class ZoomError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: str | int | None = None):
        super().__init__(mask_secrets(message))
        self.status = status
        self.code = code


class ZoomPermanentError(ZoomError):
    pass


class ZoomInvalidGrantError(ZoomPermanentError):
    """The refresh token or code is dead (rotated, revoked, reused or expired)."""


class ZoomAccessTokenRejectedError(ZoomPermanentError):
    """Zoom refused the access token itself (HTTP 401, code 124: invalid or expired), often before
    the expiry it announced. The grant may still be alive: refresh and try again once."""


class ZoomNotFoundError(ZoomPermanentError):
    """The meeting or user does not exist (HTTP 404, Zoom codes 3001 and 1001)."""


class ZoomRetryableError(ZoomError):
    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None, **kwargs):
        super().__init__(message, status=status, **kwargs)
        self.retry_after = retry_after


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str

    def __repr__(self) -> str:
        return f"TokenSet(expires_in={self.expires_in}, scope={self.scope!r})"


@dataclass(frozen=True)
class ZoomUser:
    id: str
    account_id: str
    email: str
    pmi: str


@dataclass(frozen=True)
class MintedToken:
    token: str
    expires_in: int | None = None

    def __repr__(self) -> str:
        return f"MintedToken(expires_in={self.expires_in})"


def _basic_auth(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


_NOT_FOUND_CODES = {3001, 1001}
_MEETING_IN_PATH = re.compile(r"/meetings/[^/]+/")
_GRANT_ERRORS = {"invalid_grant", "invalid_request"}


def _endpoint(url: str, params: dict | None) -> str:
    """A metrics label for a call: the path with ids templated, and the token type."""
    path = _MEETING_IN_PATH.sub("/meetings/{id}/", urlsplit(url).path)
    kind = (params or {}).get("type")
    return f"{path}?type={kind}" if kind else path


def _request(method: str, url: str, *, timeout: float | None, total: float | None = None, **kwargs) -> dict:
    endpoint = _endpoint(url, kwargs.get("params"))
    try:
        body = _send(method, url, timeout=timeout, total=total, **kwargs)
    except ZoomError as exc:
        outcome = "timeout" if exc.status is None else ("429" if exc.status == 429 else f"{exc.status // 100}xx")
        metrics.ZOOM_CALLS.labels(endpoint, outcome).inc()
        raise
    metrics.ZOOM_CALLS.labels(endpoint, "ok").inc()
    return body


def _send(method: str, url: str, *, timeout: float | None, total: float | None = None, **kwargs) -> dict:
    timeout = total if total is not None else (timeout if timeout is not None else settings.ZOOM_HTTP_TIMEOUT)
    try:
        if total is not None:
            response = request_by_deadline(method, url, total=total, **kwargs)
        else:
            response = SESSION.request(method, url, timeout=timeout, **kwargs)
    except requests.Timeout:
        raise ZoomRetryableError(f"Zoom did not answer within {timeout:.1f}s") from None
    except requests.RequestException as exc:
        raise ZoomRetryableError(f"Could not reach Zoom ({type(exc).__name__})") from None

    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    status = response.status_code
    if status < 400:
        return body

    code = body.get("code") or body.get("error")
    detail = body.get("message") or body.get("reason") or body.get("error_description") or response.reason
    message = f"Zoom answered {status}" + (f" ({code}: {detail})" if code else f" ({detail})")
    if status == 429:
        raise ZoomRetryableError(
            message, status=status, code=code, retry_after=parse_retry_after(response.headers.get("Retry-After"))
        )
    if status >= 500:
        raise ZoomRetryableError(message, status=status, code=code)
    if body.get("error") in _GRANT_ERRORS:
        raise ZoomInvalidGrantError(message, status=status, code=code)
    if status == 401 and _is_bearer(kwargs.get("headers") or {}):
        raise ZoomAccessTokenRejectedError(message, status=status, code=code)
    if status == 404 or body.get("code") in _NOT_FOUND_CODES:
        raise ZoomNotFoundError(message, status=status, code=code)
    raise ZoomPermanentError(message, status=status, code=code)


def _is_bearer(headers: dict) -> bool:
    return headers.get("Authorization", "").startswith("Bearer ")


def _token_set(body: dict) -> TokenSet:
    try:
        return TokenSet(
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
            expires_in=int(body.get("expires_in", 3599)),
            scope=body.get("scope", ""),
        )
    except (KeyError, TypeError, ValueError):
        raise ZoomRetryableError("Zoom's token answer had no access or refresh token") from None


def authorize_url(*, client_id: str, redirect_uri: str, state: str, code_challenge: str) -> str:
    # Zoom docs: https://developers.zoom.us/docs/integrations/oauth/ (authorization code + PKCE)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    return f"{settings.ZOOM_OAUTH_BASE_URL}{AUTHORIZE_PATH}?{urlencode(query)}"


def exchange_code(
    *,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    timeout: float | None = None,
) -> TokenSet:
    # Zoom docs: POST /oauth/token, grant_type=authorization_code, Basic auth, form body
    # (token values in the query string are refused since 2023).
    body = _request(
        "POST",
        settings.ZOOM_OAUTH_BASE_URL + TOKEN_PATH,
        timeout=timeout,
        headers={"Authorization": _basic_auth(client_id, client_secret)},
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        },
    )
    return _token_set(body)


def refresh_tokens(*, client_id: str, client_secret: str, refresh_token: str, timeout: float | None = None) -> TokenSet:
    """`timeout` (default ZOOM_REFRESH_TIMEOUT) is one deadline for the whole request."""
    # Zoom docs: POST /oauth/token, grant_type=refresh_token. The answer carries a new refresh
    # token and the one sent dies at once: the caller must persist it before anything else.
    body = _request(
        "POST",
        settings.ZOOM_OAUTH_BASE_URL + TOKEN_PATH,
        timeout=None,
        total=timeout if timeout is not None else settings.ZOOM_REFRESH_TIMEOUT,
        headers={"Authorization": _basic_auth(client_id, client_secret)},
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
    )
    return _token_set(body)


def revoke_token(*, client_id: str, client_secret: str, token: str, timeout: float | None = None) -> None:
    # Zoom docs: POST /oauth/revoke, Basic auth, form body token=<access token>.
    _request(
        "POST",
        settings.ZOOM_OAUTH_BASE_URL + REVOKE_PATH,
        timeout=timeout,
        headers={"Authorization": _basic_auth(client_id, client_secret)},
        data={"token": token},
    )


def _bearer(access_token: str) -> dict:
    return {"Authorization": f"Bearer {access_token}"}


def get_me(*, access_token: str, timeout: float | None = None) -> ZoomUser:
    # Zoom docs: GET /v2/users/me (scope user:read:user).
    body = _request("GET", settings.ZOOM_API_BASE_URL + "/users/me", timeout=timeout, headers=_bearer(access_token))
    if not body.get("id"):
        raise ZoomRetryableError("Zoom's /users/me answer had no user id")
    return ZoomUser(
        id=str(body["id"]),
        account_id=str(body.get("account_id", "")),
        email=str(body.get("email", "")),
        pmi=str(body.get("pmi") or ""),
    )


def _minted(body: dict) -> MintedToken:
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise ZoomRetryableError("Zoom's answer had no token")
    expires_in = body.get("expire_in")
    return MintedToken(token=token, expires_in=int(expires_in) if isinstance(expires_in, int) else None)


def get_zak(*, access_token: str, timeout: float | None = None) -> MintedToken:
    # Zoom docs: GET /v2/users/me/token?type=zak (scope user:read:zak); lives 2 h by default.
    body = _request(
        "GET",
        settings.ZOOM_API_BASE_URL + "/users/me/token",
        timeout=timeout,
        headers=_bearer(access_token),
        params={"type": "zak"},
    )
    return _minted(body)


def get_obf_token(*, access_token: str, meeting_id: str, timeout: float | None = None) -> MintedToken:
    # Zoom docs: GET /v2/users/me/token?type=onbehalf&meeting_id= (scope user:read:token).
    # Single-use and bound to the meeting; Zoom refuses it while the user is not in the meeting.
    body = _request(
        "GET",
        settings.ZOOM_API_BASE_URL + "/users/me/token",
        timeout=timeout,
        headers=_bearer(access_token),
        params={"type": "onbehalf", "meeting_id": meeting_id},
    )
    return _minted(body)


def get_local_recording_join_token(
    *, access_token: str, meeting_id: str, bypass_waiting_room: bool = False, timeout: float | None = None
) -> MintedToken:
    # Zoom docs: GET /v2/meetings/{meetingId}/jointoken/local_recording
    # (scope meeting:read:local_recording_token); host only, single use, expire_in 120.
    params = {"bypass_waiting_room": "true"} if bypass_waiting_room else None
    body = _request(
        "GET",
        f"{settings.ZOOM_API_BASE_URL}/meetings/{meeting_id}/jointoken/local_recording",
        timeout=timeout,
        headers=_bearer(access_token),
        params=params,
    )
    return _minted(body)
