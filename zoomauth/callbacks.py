"""The token callbacks Recall GETs just before a bot joins (and, for customer-managed OAuth,
whenever it needs an access token).

Success is 200 with the bare token as text/plain. Anything else is a short plain-text reason
with a fitting status; never a 200 without a token. Statuses:
400 bad meeting id or too many query parameters · 401 bad secret or signature · 404 no usable
connection or no such meeting · 405 a method other than GET or HEAD (neither audited nor counted) ·
409 Zoom refused to mint (scope, user not in the meeting, not the host) · 410 the connection needs
reconnecting · 429 throttled · 502/503 Zoom failing (Retry-After).

This view owns the HTTP side: throttles, the audit and the mapping of outcomes to statuses: a
refused credential's, a grant's scope, a token error's category. Which credential a request
presents (its one row read, its secret) is zoomauth.credentials' business; what token to hand out
is zoomauth.tokens'. The path is kept lean because bots wait on it: one row read, the throttles in one Redis round
trip (two for unsigned requests: their address limits are checked before the row is read, so a
locked-out or over-limit caller costs no database read), no content negotiation, and the audit row
written in batches after the answer is sent (audit.py).
"""

import logging
import re
import time
from collections.abc import Callable
from typing import cast

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpResponseBase
from rest_framework import renderers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from brokerproject import metrics, signing
from brokerproject.arrival import arrived_at
from brokerproject.dbpool import hand_back_connection
from brokerproject.throttling import Window, client_address, client_ip, counts

from . import audit
from .credentials import CallbackCredential, CredentialRefused, OutOfScope, callback_credential, obf_authorizer
from .models import CallbackLog
from .tokens import Budget, Category, TokenRequest, TokenUnavailable, token_issue

logger = logging.getLogger(__name__)

KINDS = frozenset(CallbackLog.Kind.values)  # an enum's .values is rebuilt on every access
MEETING_ID = re.compile(r"^\d{9,13}$")

STATUS_FOR = {
    Category.NOT_FOUND: 404,
    Category.REFUSED: 409,
    Category.NEEDS_RECONNECT: 410,
    Category.RATE_LIMITED: 503,
    Category.TIMED_OUT: 503,
    Category.ZOOM_FAILED: 502,
}


class PlainTextRenderer(renderers.BaseRenderer):
    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict):
            data = data.get("detail", "")
        return str(data).encode(self.charset)


class PlainTextOnly(BaseContentNegotiation):
    """Recall takes text/plain whatever it sends in Accept: no negotiation to do, no 406."""

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


ALLOWED_METHODS = ("GET", "HEAD")


class CallbackRefused(Exception):
    """`stale`: a 401 for a URL the broker knows (a rotated secret, an ended bot URL), as opposed
    to an id nobody was given."""

    def __init__(self, http_status: int, message: str, *, retry_after: int | None = None, stale: bool = False):
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after
        self.stale = stale


def _logged_already(response: HttpResponseBase) -> HttpResponseBase:
    """Tell django.request not to log this answer (Django's own flag, set by log_response)."""
    response._has_been_logged = True  # type: ignore[attr-defined]  # not in django-stubs
    return response


class TokenResponse(Response):
    """The plain-text answer; `after` runs once the server has sent it (WSGI close())."""

    renderer_context: dict  # DRF's view sets it on its answers; the refusals set their own

    def __init__(self, body: str, *, status: int, retry_after: int | None = None):
        super().__init__(body, status=status, content_type="text/plain; charset=utf-8")
        self["Cache-Control"] = "no-store"
        if retry_after:
            self["Retry-After"] = str(retry_after)
        self.after: Callable[[], None] | None = None

    def close(self):
        try:
            if self.after is not None:
                self.after()
        except Exception:
            logger.exception("token callback audit failed")
        finally:
            super().close()


class CallbackThrottles:
    """Fixed-window counters in Redis (per process while Redis is away), in at most two round trips.

    Recall's bots share Recall's egress addresses, so an address says little about who asks:
    - a request with a valid Recall signature is never refused by an address limit; its failed
      secrets are counted per (address, URL), so a few stale URLs lock out only themselves;
    - unsigned traffic (no verification secret configured, or not Recall) is counted per address
      and checked before the row is read (`before_read`): a caller over the address limit or locked
      out costs no database read. Its failures lock out the (address, URL) pair; only ids the broker
      never gave out (guesses) count towards the address's lockout, so bots fetching with a rotated
      secret or an ended bot URL, however many, never lock Recall's address out for other
      connections;
    - per connection, counted only for a verified secret, so nobody who merely knows a connection
      id (it is in logs and URLs) can use up the real bot's allowance.
    A locked-out caller is refused whether or not its secret was right, so the lockout tells a
    guesser nothing.
    """

    def __init__(self, address: str, *, signed: bool, connection_param: str):
        # Rates as settings.py writes them ("600/min"); the stubs allow numbers and None too.
        rates = cast(dict[str, str], api_settings.DEFAULT_THROTTLE_RATES)
        self.rates = rates
        self.signed = signed
        self.address = Window.for_rate("callback_address", address, rates["callback_address"])
        self.address_failures = Window.for_rate("callback_failures", address, rates["callback_failures"])
        self.url_failures = Window.for_rate(
            "callback_failures", f"{address}:{connection_param[:40]}", rates["callback_failures"]
        )

    def _locked_out(self) -> CallbackRefused:
        return CallbackRefused(
            429, "Too many failed attempts from this address.", retry_after=self.url_failures.retry_after()
        )

    def before_read(self) -> None:
        """Unsigned: count the address and check its lockouts, before anything reads the database."""
        if self.signed:
            return
        windows = [self.address, self.address_failures, self.url_failures]
        requests, address_failures, url_failures = counts(windows, increment=[True, False, False])
        if address_failures >= self.address_failures.limit:
            raise CallbackRefused(
                429, "Too many failed attempts from this address.", retry_after=self.address_failures.retry_after()
            )
        if url_failures >= self.url_failures.limit:
            raise self._locked_out()
        if requests > self.address.limit:
            raise CallbackRefused(429, "Too many requests. Slow down.", retry_after=self.address.retry_after())

    def after_read(self, connection_id: int | None, refused: CallbackRefused | None) -> None:
        """Count this request's outcome (`connection_id` is None when its secret failed, `refused`
        says why) and refuse it (429) when a limit is over. One round trip."""
        windows, bump = [], []
        if self.signed or refused is not None:
            windows.append(self.url_failures)
            bump.append(refused is not None)  # a failure counts against the lockout it is checked by
        if refused is not None and not self.signed and not refused.stale:
            windows.append(self.address_failures)
            bump.append(True)
        per_connection = None
        if connection_id is not None:
            per_connection = Window.for_rate(
                "callback_connection", str(connection_id), self.rates["callback_connection"]
            )
            windows.append(per_connection)
            bump.append(True)
        seen = dict(zip((window.key for window in windows), counts(windows, increment=bump), strict=True))
        if self.signed and seen[self.url_failures.key] - (1 if refused is not None else 0) >= self.url_failures.limit:
            raise self._locked_out()
        if per_connection is not None and seen[per_connection.key] > per_connection.limit:
            raise CallbackRefused(
                429, "Too many requests for this connection. Slow down.", retry_after=per_connection.retry_after()
            )

    def record_failure(self) -> None:
        """A failure found before the secret was read (a bad Recall signature)."""
        counts([self.url_failures, self.address_failures], increment=[True, True])


class TokenCallbackView(APIView):
    authentication_classes: list = []  # the connection's secret, checked in get()
    permission_classes = [AllowAny]
    renderer_classes = [PlainTextRenderer]
    parser_classes: list = []  # GETs without a body
    content_negotiation_class = PlainTextOnly
    throttle_classes: list = []  # CallbackThrottles, around the secret check in get()
    schema = None  # plain-text endpoints for Recall, not part of the JSON API

    def perform_authentication(self, request):
        """No DRF user: the connection's secret (or a bot's grant) is the credential, checked in
        get(). DRF's default would build an AnonymousUser for every callback."""

    def handle_exception(self, exc):
        if isinstance(exc, CallbackRefused):
            raise exc
        return super().handle_exception(exc)

    def dispatch(self, request, *args, **kwargs):
        if request.method not in ALLOWED_METHODS:
            # Not a token request: no work, no audit, not counted among the answers (the overview's
            # share of 200s is about what Recall asked for).
            not_allowed = self._refusal(CallbackRefused(405, "Token callbacks answer GET only."))
            not_allowed["Allow"] = ", ".join(ALLOWED_METHODS)
            return _logged_already(not_allowed)
        # From the request's arrival in this process (brokerproject.wsgi stamps it) when known:
        # what Recall waits for, less only the network.
        started = self.arrived_at = arrived_at(request.META) or time.monotonic()
        self.audit = {
            "zoom_calls": 0,
            "signature_checked": False,
            "connection_id": None,
            "grant_id": None,
            "meeting_id": "",
        }
        kind = kwargs.get("kind", "")
        response: HttpResponseBase
        try:
            try:
                request.GET  # noqa: B018 - parsed here once, so that too many parameters is the caller's error
            except TooManyFieldsSent:
                raise CallbackRefused(
                    400, f"Too many query parameters (at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS})."
                ) from None
            response = super().dispatch(request, *args, **kwargs)
            outcome = "token served" if response.status_code == 200 else str(getattr(response, "data", ""))[:200]
        except CallbackRefused as refused:
            response = self._refusal(refused)
            outcome = str(refused)
        except Exception:
            logger.exception("token callback failed", extra={"kind": kind})
            response = self._refusal(CallbackRefused(503, "The broker failed; try again.", retry_after=2))
            outcome = "internal error"
        response["Cache-Control"] = "no-store"
        _logged_already(response)  # its one line is the audit's below, not django.request's
        if kind in KINDS:
            elapsed = time.monotonic() - started
            metrics.CALLBACKS.labels(kind, str(response.status_code)).inc()
            metrics.CALLBACK_SECONDS.labels(kind).observe(elapsed)
            latency_ms = int(elapsed * 1000)
            address = client_ip(request)
            audit = lambda: self._audit(kind, response.status_code, outcome, latency_ms, address)  # noqa: E731
            if isinstance(response, TokenResponse):
                response.after = audit  # once Recall has its answer
            else:
                audit()
        return response

    def _refusal(self, refused: CallbackRefused) -> TokenResponse:
        response = TokenResponse(str(refused), status=refused.http_status, retry_after=refused.retry_after)
        response.accepted_renderer = PlainTextRenderer()
        response.accepted_media_type = PlainTextRenderer.media_type
        response.renderer_context = {}
        response.render()
        return response

    def _audit(self, kind: str, status_code: int, outcome: str, latency_ms: int, address: str | None) -> None:
        audit.audit_record(
            connection_id=self.audit["connection_id"],
            grant_id=self.audit["grant_id"],
            kind=kind,
            meeting_id=self.audit["meeting_id"],
            status_code=status_code,
            outcome=outcome[:200],
            latency_ms=latency_ms,
            zoom_calls=self.audit["zoom_calls"],
            signature_checked=self.audit["signature_checked"],
            client_address=address,
        )
        logger.info(
            "token callback",
            extra={
                "kind": kind,
                "status": status_code,
                "latency_ms": latency_ms,
                "zoom_calls": self.audit["zoom_calls"],
                "connection": self.audit["connection_id"],
                "address": address,
                "outcome": "" if status_code == 200 else outcome[:200],
            },
        )

    # --- request handling ------------------------------------------------------------------
    def get(self, request, kind: str):
        if kind not in KINDS:
            raise CallbackRefused(404, "Unknown token kind.")
        budget = Budget(settings.CALLBACK_TIME_BUDGET, since=self.arrived_at)
        credential = self._authenticated(request)
        connection, grant = credential.connection(), credential.grant
        self.audit["connection_id"] = credential.connection_id
        self.audit["grant_id"] = grant.id if grant is not None else None

        meeting_id = self._meeting_id(request, kind)
        if grant is not None:
            try:
                credential.check_scope(kind=kind, meeting_id=meeting_id)
            except OutOfScope as out_of_scope:
                raise CallbackRefused(403, str(out_of_scope)) from None
            bypass_waiting_room = grant.bypass_waiting_room  # the launch decided
            if kind == CallbackLog.Kind.OBF and grant.obf_candidates:
                connection = obf_authorizer(credential, connection, meeting_id)
                self.audit["connection_id"] = connection.pk  # whose token was minted
                hand_back_connection()
        else:  # the connection's own URL, the customer's backend's: its query decides
            bypass_waiting_room = request.query_params.get("bypass_waiting_room", "").lower() in ("1", "true", "yes")
        token_request = TokenRequest(
            connection=connection, kind=kind, meeting_id=meeting_id, bypass_waiting_room=bypass_waiting_room
        )
        try:
            token = token_issue(request=token_request, budget=budget)
        except TokenUnavailable as unavailable:
            raise CallbackRefused(
                STATUS_FOR[unavailable.category], str(unavailable), retry_after=unavailable.retry_after
            ) from None
        finally:
            self.audit["zoom_calls"] = budget.zoom_calls
        return TokenResponse(token, status=200)

    def _authenticated(self, request) -> CallbackCredential:
        """Recall's signature, the address's limits, the credential (its one row read, its secret)
        and the connection's limit, in that order; CallbackRefused for the first that fails."""
        address = client_address(request)
        connection_param = request.query_params.get("grant") or request.query_params.get("connection", "")
        try:
            signed = self._check_signature(request)
        except CallbackRefused:
            CallbackThrottles(address, signed=False, connection_param=connection_param).record_failure()
            raise
        throttles = CallbackThrottles(address, signed=signed, connection_param=connection_param)
        throttles.before_read()
        try:
            credential, refused = self._credential(request), None
        except CredentialRefused as failed:
            credential, refused = None, CallbackRefused(401, str(failed), stale=failed.stale)
        hand_back_connection()  # minting waits on Zoom, and must not hold a pool connection meanwhile
        throttles.after_read(credential.connection_id if credential is not None else None, refused)
        if refused is not None:
            raise refused
        assert credential is not None  # read, or refused above
        return credential

    def _meeting_id(self, request, kind: str) -> str:
        """The meeting an OBF or join token is for (the other kinds are for no meeting)."""
        if kind not in (CallbackLog.Kind.OBF, CallbackLog.Kind.JOIN_TOKEN):
            return ""
        meeting_id = request.query_params.get("meeting_id", "").replace(" ", "")
        self.audit["meeting_id"] = meeting_id[:20]
        if not MEETING_ID.match(meeting_id):
            raise CallbackRefused(400, "meeting_id is missing or is not a Zoom meeting number (9 to 13 digits).")
        return meeting_id

    def _check_signature(self, request) -> bool:
        """True when the request carries a valid Recall signature; 401 for a bad one."""
        secret = settings.RECALL_VERIFICATION_SECRET
        if not secret:
            return False
        if not signing.has_signature_headers(request.headers):
            if settings.RECALL_ACCEPT_UNSIGNED_CALLBACKS:
                return False
            raise CallbackRefused(401, "Unsigned request: Recall's webhook-signature headers are required.")
        try:
            signing.verify(secret=secret, headers=request.headers, body=b"")
        except signing.SignatureError as exc:
            raise CallbackRefused(401, f"Bad signature: {exc}.") from None
        self.audit["signature_checked"] = True
        return True

    def _credential(self, request) -> CallbackCredential:
        by_grant = "grant" in request.query_params
        return callback_credential(
            public_id=request.query_params.get("grant" if by_grant else "connection", ""),
            by_grant=by_grant,
            secret=request.query_params.get("auth_token", ""),
        )
