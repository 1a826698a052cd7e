"""The token callbacks Recall GETs just before a bot joins (and, for customer-managed OAuth,
whenever it needs an access token).

Success is 200 with the bare token as text/plain. Anything else is a short plain-text reason
with a fitting status; never a 200 without a token. Statuses:
400 bad meeting id · 401 bad secret or signature · 404 no usable connection or no such
meeting · 409 Zoom refused to mint (scope, user not in the meeting, not the host) ·
410 the connection needs reconnecting · 429 throttled · 502/503 Zoom failing (Retry-After).
"""

import ipaddress
import logging
import re
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from encrypted_model_fields.fields import decrypt_str, encrypt_str
from rest_framework import renderers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from recallbots import signing

from . import zoom
from .models import CallbackLog, ZoomConnection
from .services import ConnectionUnusable, connection_fresh_access_token

logger = logging.getLogger(__name__)

MEETING_ID = re.compile(r"^\d{9,13}$")
# Concurrent ZAK callbacks for one connection share one Zoom call for this long.
ZAK_SHARE_SECONDS = 60
# Recall refuses access tokens with less than this left.
RECALL_MIN_VALIDITY_SECONDS = 120
# Leave the token this long past the minting call, so the minting request itself can succeed.
MINT_MIN_VALIDITY_SECONDS = 120


class PlainTextRenderer(renderers.BaseRenderer):
    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict):
            data = data.get("detail", "")
        return str(data).encode(self.charset)


class CallbackProblem(Exception):
    def __init__(self, http_status: int, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after


class _CallbackThrottle(SimpleRateThrottle):
    def throttle_failure(self):
        return False


class CallbackAddressThrottle(_CallbackThrottle):
    scope = "callback_address"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class CallbackConnectionThrottle(_CallbackThrottle):
    scope = "callback_connection"

    def get_cache_key(self, request, view):
        ident = request.query_params.get("connection", "")[:36]
        return self.cache_format % {"scope": self.scope, "ident": ident} if ident else None


class FailedAuthThrottle:
    """Counts refused secrets and signatures per address; past the rate, every request gets 429."""

    scope = "callback_failures"

    def __init__(self, address: str):
        limit, _, period = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope].partition("/")
        self.limit = int(limit)
        self.period = {"s": 1, "m": 60, "h": 3600}[period[0]]
        self.key = f"throttle_{self.scope}_{address}"

    def exhausted(self) -> bool:
        return (cache.get(self.key) or 0) >= self.limit

    def record(self) -> None:
        if not cache.add(self.key, 1, self.period):
            try:
                cache.incr(self.key)
            except ValueError:
                cache.set(self.key, 1, self.period)


def _client_address(request) -> str | None:
    """The caller's address, through NUM_PROXIES trusted proxies (X-Forwarded-For), as DRF sees it."""
    ident = CallbackAddressThrottle().get_ident(request)
    try:
        ipaddress.ip_address(ident)
    except ValueError:
        return None
    return ident


class Deadline:
    def __init__(self, seconds: float):
        self.ends_at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()


class TokenCallbackView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [PlainTextRenderer]
    throttle_classes = [CallbackAddressThrottle, CallbackConnectionThrottle]
    schema = None  # plain-text endpoints for Recall, not part of the JSON API

    def throttled(self, request, wait):
        raise CallbackProblem(429, "Too many requests. Slow down.", retry_after=int(wait or 1) + 1)

    def handle_exception(self, exc):
        if isinstance(exc, CallbackProblem):
            raise exc
        return super().handle_exception(exc)

    def dispatch(self, request, *args, **kwargs):
        started = time.monotonic()
        self.audit = {"zoom_calls": 0, "signature_checked": False, "connection": None, "meeting_id": ""}
        kind = kwargs.get("kind", "")
        try:
            response = super().dispatch(request, *args, **kwargs)
            outcome = "token served" if response.status_code == 200 else str(getattr(response, "data", ""))[:200]
        except CallbackProblem as problem:
            response = self._problem_response(problem)
            outcome = str(problem)
        except Exception:
            logger.exception("token callback failed", extra={"kind": kind})
            response = self._problem_response(CallbackProblem(503, "The broker failed; try again.", retry_after=2))
            outcome = "internal error"
        response["Cache-Control"] = "no-store"
        self._audit(request, kind, response.status_code, outcome, started)
        return response

    def _problem_response(self, problem: CallbackProblem):
        response = Response(str(problem), status=problem.http_status, content_type="text/plain; charset=utf-8")
        if problem.retry_after:
            response["Retry-After"] = str(problem.retry_after)
        response.accepted_renderer = PlainTextRenderer()
        response.accepted_media_type = PlainTextRenderer.media_type
        response.renderer_context = {}
        return response.render()

    def _audit(self, request, kind: str, status_code: int, outcome: str, started: float) -> None:
        if kind not in CallbackLog.Kind.values:
            return
        CallbackLog.objects.create(
            connection=self.audit["connection"],
            kind=kind,
            meeting_id=self.audit["meeting_id"],
            status_code=status_code,
            outcome=outcome[:200],
            latency_ms=int((time.monotonic() - started) * 1000),
            zoom_calls=self.audit["zoom_calls"],
            signature_checked=self.audit["signature_checked"],
            client_address=_client_address(request),
        )
        logger.info(
            "token callback",
            extra={"kind": kind, "status": status_code, "latency_ms": int((time.monotonic() - started) * 1000)},
        )

    # --- request handling ------------------------------------------------------------------
    def get(self, request, kind: str):
        if kind not in CallbackLog.Kind.values:
            raise CallbackProblem(404, "Unknown token kind.")
        deadline = Deadline(settings.CALLBACK_TIME_BUDGET)
        failures = FailedAuthThrottle(CallbackAddressThrottle().get_ident(request))
        if failures.exhausted():
            raise CallbackProblem(429, "Too many failed attempts from this address.", retry_after=60)
        try:
            self._check_signature(request)
            connection = self._authenticated_connection(request)
        except CallbackProblem as problem:
            if problem.http_status == 401:
                failures.record()
            raise
        self.audit["connection"] = connection

        meeting_id = ""
        if kind in (CallbackLog.Kind.OBF, CallbackLog.Kind.JOIN_TOKEN):
            meeting_id = request.query_params.get("meeting_id", "").replace(" ", "")
            self.audit["meeting_id"] = meeting_id[:20]
            if not MEETING_ID.match(meeting_id):
                raise CallbackProblem(400, "meeting_id is missing or is not a Zoom meeting number (9 to 13 digits).")

        token = self._token(kind, connection, meeting_id, request, deadline)
        return Response(token, status=status.HTTP_200_OK, content_type="text/plain; charset=utf-8")

    def _check_signature(self, request) -> None:
        secret = settings.RECALL_VERIFICATION_SECRET
        if not secret:
            return
        if not signing.has_signature_headers(request.headers):
            if settings.RECALL_ACCEPT_UNSIGNED_CALLBACKS:
                return
            raise CallbackProblem(401, "Unsigned request: Recall's webhook-signature headers are required.")
        try:
            signing.verify(secret=secret, headers=request.headers, body=b"")
        except signing.SignatureError as exc:
            raise CallbackProblem(401, f"Bad signature: {exc}.") from None
        self.audit["signature_checked"] = True

    def _authenticated_connection(self, request) -> ZoomConnection:
        try:
            public_id = uuid.UUID(request.query_params.get("connection", ""))
        except ValueError:
            raise CallbackProblem(401, "Unknown connection or wrong auth_token.") from None
        connection = ZoomConnection.objects.select_related("app").filter(public_id=public_id).first()
        if connection is None or not connection.check_callback_secret(request.query_params.get("auth_token", "")):
            raise CallbackProblem(401, "Unknown connection or wrong auth_token.")
        if connection.status == ZoomConnection.Status.REVOKED:
            raise CallbackProblem(404, "No usable Zoom connection: it was disconnected.")
        if connection.status == ZoomConnection.Status.NEEDS_RECONNECT:
            raise CallbackProblem(410, "The Zoom connection needs reconnecting by its user.")
        return connection

    def _token(self, kind: str, connection: ZoomConnection, meeting_id: str, request, deadline: Deadline) -> str:
        if kind == CallbackLog.Kind.ACCESS_TOKEN:
            try:
                fresh = self._call(
                    deadline,
                    lambda timeout: connection_fresh_access_token(
                        connection_id=connection.pk, min_validity=settings.ACCESS_TOKEN_MIN_VALIDITY, timeout=timeout
                    ),
                )
            except CallbackProblem as problem:
                # Zoom failing to refresh early is no reason to fail Recall: a stored token that
                # still meets Recall's 120 s minimum (plus a little slack) is served instead.
                stored = ZoomConnection.objects.get(pk=connection.pk)
                if (
                    problem.http_status in (502, 503)
                    and stored.is_usable
                    and not stored.expires_within(timedelta(seconds=RECALL_MIN_VALIDITY_SECONDS + 15))
                ):
                    return stored.access_token
                raise
            return fresh.token
        if kind == CallbackLog.Kind.ZAK:
            return self._shared_zak(connection, deadline)
        access_token = self._access_token(connection, deadline)
        if kind == CallbackLog.Kind.OBF:
            minted = self._call(
                deadline,
                lambda timeout: zoom.get_obf_token(access_token=access_token, meeting_id=meeting_id, timeout=timeout),
            )
        else:
            bypass = request.query_params.get("bypass_waiting_room", "").lower() in ("1", "true", "yes")
            minted = self._call(
                deadline,
                lambda timeout: zoom.get_local_recording_join_token(
                    access_token=access_token, meeting_id=meeting_id, bypass_waiting_room=bypass, timeout=timeout
                ),
            )
        return minted.token

    def _access_token(self, connection: ZoomConnection, deadline: Deadline) -> str:
        fresh = self._call(
            deadline,
            lambda timeout: connection_fresh_access_token(
                connection_id=connection.pk, min_validity=timedelta(seconds=MINT_MIN_VALIDITY_SECONDS), timeout=timeout
            ),
        )
        return fresh.token

    def _shared_zak(self, connection: ZoomConnection, deadline: Deadline) -> str:
        """Single-flight across processes: one caller mints, the others wait for its result."""
        key = f"zak:{connection.pk}:{connection.token_generation}"
        lock_key = key + ":minting"
        cached = cache.get(key)
        if cached:
            return decrypt_str(cached)
        if cache.add(lock_key, 1, timeout=max(1, int(settings.CALLBACK_TIME_BUDGET) + 1)):
            try:
                access_token = self._access_token(connection, deadline)
                minted = self._call(deadline, lambda timeout: zoom.get_zak(access_token=access_token, timeout=timeout))
                cache.set(key, encrypt_str(minted.token).decode(), timeout=ZAK_SHARE_SECONDS)
                return minted.token
            finally:
                cache.delete(lock_key)
        while deadline.remaining() > 1.0:
            time.sleep(0.05)
            cached = cache.get(key)
            if cached:
                return decrypt_str(cached)
            if not cache.get(lock_key):
                break  # the minter failed; mint ourselves
        access_token = self._access_token(connection, deadline)
        return self._call(deadline, lambda timeout: zoom.get_zak(access_token=access_token, timeout=timeout)).token

    def _call(self, deadline: Deadline, fn):
        """Run a Zoom call within the time budget, retrying 429 (honouring Retry-After) and 5xx."""
        attempt = 0
        while True:
            remaining = deadline.remaining()
            if remaining < 0.3:
                raise CallbackProblem(503, "Zoom did not answer within the time budget.", retry_after=5)
            attempt += 1
            try:
                result = fn(min(settings.ZOOM_HTTP_TIMEOUT, remaining - 0.2))
                self.audit["zoom_calls"] += getattr(result, "zoom_calls", 1)
                return result
            except ConnectionUnusable as exc:
                if exc.status == ZoomConnection.Status.NEEDS_RECONNECT:
                    raise CallbackProblem(410, "The Zoom connection needs reconnecting by its user.") from None
                raise CallbackProblem(404, f"No usable Zoom connection: {exc}") from None
            except zoom.ZoomRetryableError as exc:
                self.audit["zoom_calls"] += 1
                wait = exc.retry_after if exc.retry_after is not None else 0.2 * attempt
                if deadline.remaining() - wait < 0.5:
                    if exc.status == 429:
                        raise CallbackProblem(
                            503, "Zoom is rate-limiting this account; try again.", retry_after=int(wait) + 1
                        ) from None
                    raise CallbackProblem(502, f"Zoom failed: {exc}.", retry_after=5) from None
                time.sleep(wait)
            except zoom.ZoomNotFoundError:
                self.audit["zoom_calls"] += 1
                raise CallbackProblem(404, "Zoom says this meeting does not exist.") from None
            except zoom.ZoomInvalidGrantError:
                self.audit["zoom_calls"] += 1
                raise CallbackProblem(410, "The Zoom connection needs reconnecting by its user.") from None
            except zoom.ZoomPermanentError as exc:
                self.audit["zoom_calls"] += 1
                raise CallbackProblem(409, f"Zoom refused to make the token: {exc}.") from None
