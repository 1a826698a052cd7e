"""Recall.ai API client. Knows nothing of the broker's models.

RecallRetryableError: 429 (Retry-After), 502/503/504, 507 (bot pool empty), timeouts.
RecallError and its kinds: 400 (Recall's detail), 401 (wrong key or region), 403 (Recall's
firewall, e.g. a localhost URL in the payload), 404.
"""

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from urllib3 import exceptions as urllib3_exceptions

from brokerproject import http
from brokerproject.http import parse_retry_after
from brokerproject.logging import mask_secrets
from brokerproject.retry import RetryPolicy

logger = logging.getLogger(__name__)

SESSION = http.session()

RETRYABLE_STATUSES = {429, 502, 503, 504, 507}
# 507 means Recall's ad-hoc bot pool is empty; Recall asks for a retry every 30 s.
BOT_POOL_EMPTY_RETRY = 30.0
# A call is tried at most 4 times, waiting 0.5 s, 1 s, 2 s ... at most 8 s (or Recall's Retry-After),
# within the client's max_wait in all.
RECALL_RETRY = RetryPolicy(base=0.5, cap=8.0, attempts=4)


class RecallError(Exception):
    def __init__(self, message: str, *, status: int | None = None, body: dict | None = None):
        super().__init__(mask_secrets(message))
        self.status = status
        self.body = body or {}


class RecallAuthError(RecallError):
    pass


class RecallFirewallError(RecallError):
    pass


class RecallNotFoundError(RecallError):
    pass


class RecallRetryableError(RecallError):
    """Trying again later may work. `ambiguous`: Recall may have done the work (a timeout or a
    dropped connection after the request was sent, a 502 or 504 from a gateway)."""

    def __init__(self, message: str, *, retry_after: float | None = None, ambiguous: bool = False, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.ambiguous = ambiguous


AMBIGUOUS_STATUSES = {502, 504}


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at: str

    def __repr__(self) -> str:
        return f"AccessToken(expires_at={self.expires_at})"


def base_url_for(region: str | None = None) -> str:
    if region:
        try:
            return settings.RECALL_REGIONS[region]
        except KeyError:
            raise RecallError(f"Unknown Recall region {region!r}.") from None
    return settings.RECALL_API_BASE_URL


def _was_sent(exc: requests.ConnectionError) -> bool:
    """Refused before the request left is not ambiguous; a connection dropped after it is."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return not isinstance(reason, urllib3_exceptions.NewConnectionError)


def _describe(response: requests.Response, body: dict) -> str:
    detail = body.get("detail") or body.get("message") or body.get("code")
    if not detail and body:
        detail = "; ".join(f"{key}: {value}" for key, value in body.items())[:300]
    return f"Recall answered {response.status_code}" + (f": {detail}" if detail else "")


class RecallClient:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        max_wait: float = 60.0,
        retry: RetryPolicy = RECALL_RETRY,
    ):
        self.api_key = api_key if api_key is not None else settings.RECALL_API_KEY
        self.base_url = (base_url or settings.RECALL_API_BASE_URL).rstrip("/")
        self.timeout = timeout if timeout is not None else settings.RECALL_HTTP_TIMEOUT
        self.retry = retry if max_attempts is None else replace(retry, attempts=max_attempts)
        self.max_wait = max_wait

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict | None = None,
        params: dict | None = None,
        repeat_ambiguous: bool = True,
    ) -> dict:
        """One call, retried on a retryable answer as the client's RetryPolicy allows, waiting
        max_wait at most in all. With
        `repeat_ambiguous=False` (a create that must not happen twice) an ambiguous failure is
        raised at once, for the caller to find out what Recall did before trying again."""
        if not self.api_key:
            raise RecallAuthError("RECALL_API_KEY is not set.")
        url = self.base_url + path
        waited, attempt = 0.0, 0
        while True:
            attempt += 1
            outcome = self._attempt(method, url, json=json, params=params)
            if not isinstance(outcome, RecallRetryableError):
                return outcome  # Recall's answer
            error = outcome
            if error.ambiguous and not repeat_ambiguous:
                raise error
            wait = self.retry.wait(attempt, error.retry_after)
            if not self.retry.retries(attempt, wait, time_left=self.max_wait - waited):
                raise error
            logger.info("recall retry", extra={"path": path, "status": error.status, "wait": round(wait, 2)})
            time.sleep(wait)
            waited += wait

    def _attempt(self, method: str, url: str, *, json: dict | None, params: dict | None) -> Any:
        """One request: Recall's answer (its JSON), or the RecallRetryableError to retry on; any
        other error is raised."""
        try:
            response = SESSION.request(
                method,
                url,
                json=json,
                params=params,
                timeout=self.timeout,
                headers={"Authorization": f"Token {self.api_key}", "Accept": "application/json"},
            )
        except requests.ConnectTimeout:
            return RecallRetryableError("Could not connect to Recall (timeout)")
        except requests.ConnectionError as exc:
            return RecallRetryableError(f"Could not reach Recall ({type(exc).__name__})", ambiguous=_was_sent(exc))
        except requests.RequestException as exc:  # a read timeout: the request was sent
            return RecallRetryableError(f"Recall did not answer ({type(exc).__name__})", ambiguous=True)
        if response.status_code < 400:
            return response.json() if response.content else {}
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {"detail": str(body)[:300]}
        error = self._error(response, body)
        if not isinstance(error, RecallRetryableError):
            raise error
        return error

    def _error(self, response: requests.Response, body: dict) -> RecallError:
        status = response.status_code
        message = _describe(response, body)
        if status in RETRYABLE_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if status == 507 and retry_after is None:
                retry_after = BOT_POOL_EMPTY_RETRY
            return RecallRetryableError(
                message, status=status, body=body, retry_after=retry_after, ambiguous=status in AMBIGUOUS_STATUSES
            )
        if status == 401:
            return RecallAuthError(
                f"{message}. Check RECALL_API_KEY and that it belongs to the region at {self.base_url}.",
                status=status,
                body=body,
            )
        if status == 403:
            return RecallFirewallError(
                "Recall's firewall refused the request (403). A URL pointing at localhost in the payload "
                "trips it: set PUBLIC_BASE_URL to an address Recall can reach.",
                status=status,
            )
        if status == 404:
            return RecallNotFoundError(message, status=status, body=body)
        return RecallError(message, status=status, body=body)

    # --- Zoom OAuth apps ----------------------------------------------------------------------
    # Recall docs: POST /api/v2/zoom-oauth-apps/
    def create_zoom_oauth_app(self, *, kind: str, client_id: str, client_secret: str, webhook_secret: str) -> dict:
        return self._request(
            "POST",
            "/api/v2/zoom-oauth-apps/",
            json={
                "kind": kind,
                "client_id": client_id,
                "client_secret": client_secret,
                "webhook_secret": webhook_secret,
            },
        )

    # Recall docs: GET /api/v2/zoom-oauth-apps/ (paginated)
    def list_zoom_oauth_apps(self, **filters) -> list[dict]:
        return self._paginate("/api/v2/zoom-oauth-apps/", filters)

    # Recall docs: GET /api/v2/zoom-oauth-apps/{id}/
    def get_zoom_oauth_app(self, app_id: str) -> dict:
        return self._request("GET", f"/api/v2/zoom-oauth-apps/{app_id}/")

    # Recall docs: PATCH /api/v2/zoom-oauth-apps/{id}/ (client_secret and/or webhook_secret)
    def update_zoom_oauth_app(self, app_id: str, **fields: str) -> dict:
        return self._request("PATCH", f"/api/v2/zoom-oauth-apps/{app_id}/", json=fields)

    # Recall docs: DELETE /api/v2/zoom-oauth-apps/{id}/
    def delete_zoom_oauth_app(self, app_id: str) -> None:
        self._request("DELETE", f"/api/v2/zoom-oauth-apps/{app_id}/")

    # --- Zoom OAuth credentials -------------------------------------------------------------
    # Recall docs: POST /api/v2/zoom-oauth-credentials/ with access_token_callback_url
    # (customer-managed: Recall GETs the URL during this call) or authorization_code.
    def create_credential_customer_managed(self, *, oauth_app: str, access_token_callback_url: str) -> dict:
        return self._request(
            "POST",
            "/api/v2/zoom-oauth-credentials/",
            json={"oauth_app": oauth_app, "access_token_callback_url": access_token_callback_url},
        )

    def create_credential_recall_managed(
        self, *, oauth_app: str, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> dict:
        authorization_code = {"code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            authorization_code["code_verifier"] = code_verifier
        return self._request(
            "POST",
            "/api/v2/zoom-oauth-credentials/",
            json={"oauth_app": oauth_app, "authorization_code": authorization_code},
        )

    # Recall docs: GET /api/v2/zoom-oauth-credentials/ (filters oauth_app, user_id, account_id, status)
    def list_credentials(self, **filters) -> list[dict]:
        return self._paginate("/api/v2/zoom-oauth-credentials/", filters)

    # Recall docs: GET /api/v2/zoom-oauth-credentials/{id}/
    def get_credential(self, credential_id: str) -> dict:
        return self._request("GET", f"/api/v2/zoom-oauth-credentials/{credential_id}/")

    # Recall docs: DELETE /api/v2/zoom-oauth-credentials/{id}/
    def delete_credential(self, credential_id: str) -> None:
        self._request("DELETE", f"/api/v2/zoom-oauth-credentials/{credential_id}/")

    # Recall docs: GET /api/v2/zoom-oauth-credentials/{id}/access-token/ → {token, expires_at}
    def credential_access_token(self, credential_id: str) -> AccessToken:
        body = self._request("GET", f"/api/v2/zoom-oauth-credentials/{credential_id}/access-token/")
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RecallError("Recall's access-token answer had no token.")
        return AccessToken(token=token, expires_at=str(body.get("expires_at", "")))

    # --- Bots -----------------------------------------------------------------------------------
    # Recall docs: POST /api/v1/bot/. Never repeated after an ambiguous failure: the caller looks
    # the bot up by its metadata first (find_bots), or it could put two bots in one meeting.
    def create_bot(self, payload: dict) -> dict:
        return self._request("POST", "/api/v1/bot/", json=payload, repeat_ambiguous=False)

    # Recall docs: GET /api/v1/bot/?metadata__KEY=VALUE (only bots with every pair)
    def find_bots(self, *, metadata: dict[str, str]) -> list[dict]:
        return self._paginate("/api/v1/bot/", {f"metadata__{key}": value for key, value in metadata.items()})

    def _paginate(self, path: str, params: dict) -> list[dict]:
        results: list[dict] = []
        params = {key: value for key, value in params.items() if value is not None}
        while True:
            page = self._request("GET", path, params=params)
            results.extend(page.get("results", []))
            cursor_url = page.get("next")
            if not cursor_url:
                return results
            params = {key: values[0] for key, values in parse_qs(urlparse(cursor_url).query).items()}


def parse_time(value) -> datetime | None:
    """A time in Recall's answers (ISO 8601; naive means UTC), None when missing or impossible."""
    if not value:
        return None
    try:
        parsed = parse_datetime(str(value))
    except ValueError:  # well-formed but impossible, e.g. month 13
        return None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed
