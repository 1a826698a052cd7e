"""The token callbacks Recall GETs just before a bot joins (and, for customer-managed OAuth,
whenever it needs an access token).

Success is 200 with the bare token as text/plain. Anything else is a short plain-text reason
with a fitting status; never a 200 without a token. Statuses:
400 bad meeting id · 401 bad secret or signature · 404 no usable connection or no such
meeting · 409 Zoom refused to mint (scope, user not in the meeting, not the host) ·
410 the connection needs reconnecting · 429 throttled · 502/503 Zoom failing (Retry-After).

This view owns the HTTP side: throttles, authentication, the audit and the mapping from a
token error's category to a status. What token to hand out is zoomauth.tokens' business.
The path is kept lean because bots wait on it: one row read, the throttles in one Redis round
trip, no content negotiation, and the audit row written in batches after the answer is sent (audit.py).
"""

import functools
import json
import logging
import re
import time
import uuid

from django.conf import settings
from django.db import DatabaseError, InterfaceError
from django.db import connection as db
from django.db.models import Q, Subquery
from django.utils import timezone
from rest_framework import renderers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from brokerproject import metrics, signing
from brokerproject.crypto import secret_matches
from brokerproject.dbpool import hand_back_connection
from brokerproject.throttling import Window, client_address, client_ip, counts

from . import audit, rowcache
from .models import CallbackGrant, CallbackLog, ZoomConnection
from .tokens import Budget, Category, TokenRequest, TokenUnavailable, token_issue

logger = logging.getLogger(__name__)

KINDS = frozenset(CallbackLog.Kind.values)  # an enum's .values is rebuilt on every access
MEETING_ID = re.compile(r"^\d{9,13}$")
UNKNOWN = "Unknown connection or wrong auth_token."

# What token_issue() reads, in the model's field order (Model.from_db() takes values that way).
HOT_PATH_COLUMNS = tuple(
    field.attname
    for field in ZoomConnection._meta.concrete_fields
    if field.attname
    in {
        "id",
        "public_id",
        "status",
        "token_source",
        "access_token",
        "access_token_expires_at",
        "token_generation",
        "callback_secret_hash",
    }
)
HOT_PATH_READ = f"SELECT {', '.join(HOT_PATH_COLUMNS)} FROM {ZoomConnection._meta.db_table} WHERE public_id = %s"  # noqa: S608
# A bot's URL: its credential and its connection in one read.
GRANT_READ = (
    f"SELECT {', '.join('c.' + column for column in HOT_PATH_COLUMNS)}, g.id AS grant_id, "  # noqa: S608
    "g.secret_hash AS grant_secret_hash, g.kinds AS grant_kinds, g.meeting_id AS grant_meeting_id, "
    "g.expires_at AS grant_expires_at, g.obf_candidates AS grant_obf_candidates "
    f"FROM {CallbackGrant._meta.db_table} g JOIN {ZoomConnection._meta.db_table} c ON c.id = g.connection_id "
    "WHERE g.public_id = %s"
)
ENDED = "This bot's token URL has ended (the bot finished, or its user reconnected or disconnected Zoom)."

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


class CallbackRefused(Exception):
    def __init__(self, http_status: int, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after


class TokenResponse(Response):
    """The plain-text answer; `after` runs once the server has sent it (WSGI close())."""

    def __init__(self, body: str, *, status: int, retry_after: int | None = None):
        super().__init__(body, status=status, content_type="text/plain; charset=utf-8")
        self["Cache-Control"] = "no-store"
        if retry_after:
            self["Retry-After"] = str(retry_after)
        self.after = None

    def close(self):
        try:
            if self.after is not None:
                self.after()
        except Exception:
            logger.exception("token callback audit failed")
        finally:
            super().close()


class CallbackThrottles:
    """Fixed-window counters, all of one request's in one Redis round trip (per process while Redis
    is away), counted once the secret has been checked so that the outcome decides what to count.

    Recall's bots share Recall's egress addresses, so an address says little about who asks:
    - a request with a valid Recall signature is never refused by an address limit; its failed
      secrets are counted per (address, connection), so a few stale URLs lock out only
      themselves, never the rest of the fleet;
    - unsigned traffic (no verification secret configured, or not Recall) is counted per address,
      and its failures per address as well;
    - per connection, counted only for a verified secret, so nobody who merely knows a connection
      id (it is in logs and URLs) can use up the real bot's allowance.
    A locked-out caller is refused whether or not its secret was right, so the lockout tells a
    guesser nothing.
    """

    def __init__(self, address: str, *, signed: bool):
        self.rates = api_settings.DEFAULT_THROTTLE_RATES
        self.address_ident = address
        self.signed = signed
        self.address = Window.for_rate("callback_address", address, self.rates["callback_address"])
        self.address_failures = Window.for_rate("callback_failures", address, self.rates["callback_failures"])

    def _connection_failures(self, connection_param: str) -> Window:
        ident = f"{self.address_ident}:{connection_param[:40]}"
        return Window.for_rate("callback_failures", ident, self.rates["callback_failures"])

    def check(self, connection_param: str, connection: ZoomConnection | None) -> None:
        """Count this request (`connection` is None when its secret failed) and refuse it (429)
        when a limit is over. One round trip."""
        windows, bump = [], []
        lockout = self._connection_failures(connection_param) if self.signed else self.address_failures
        if not self.signed:
            windows.append(self.address)
            bump.append(True)
        windows.append(lockout)
        bump.append(connection is None)  # a failure counts against the lockout it is checked by
        if connection is None:
            if not self.signed:
                windows.append(self._connection_failures(connection_param))
                bump.append(True)
        else:
            windows.append(
                Window.for_rate("callback_connection", str(connection.pk), self.rates["callback_connection"])
            )
            bump.append(True)
        seen = dict(zip((window.key for window in windows), counts(windows, increment=bump), strict=True))
        failures_before = seen[lockout.key] - (1 if connection is None else 0)
        if failures_before >= lockout.limit:
            raise CallbackRefused(429, "Too many failed attempts from this address.", retry_after=lockout.retry_after())
        if not self.signed and seen[self.address.key] > self.address.limit:
            raise CallbackRefused(429, "Too many requests. Slow down.", retry_after=self.address.retry_after())
        if connection is not None and seen[windows[-1].key] > windows[-1].limit:
            raise CallbackRefused(
                429, "Too many requests for this connection. Slow down.", retry_after=windows[-1].retry_after()
            )

    def record_failure(self, connection_param: str) -> None:
        """A failure found before the secret was read (a bad Recall signature)."""
        windows = [self._connection_failures(connection_param)]
        if not self.signed:
            windows.append(self.address_failures)
        counts(windows, increment=[True] * len(windows))


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
        started = time.monotonic()
        self.audit = {
            "zoom_calls": 0,
            "signature_checked": False,
            "connection_id": None,
            "grant_id": None,
            "meeting_id": "",
        }
        kind = kwargs.get("kind", "")
        try:
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
        response._has_been_logged = True  # its one line is the audit's below, not django.request's
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
        return response.render()

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
        budget = Budget(settings.CALLBACK_TIME_BUDGET)
        address = client_address(request)
        connection_param = request.query_params.get("grant") or request.query_params.get("connection", "")
        try:
            signed = self._check_signature(request)
        except CallbackRefused:
            CallbackThrottles(address, signed=False).record_failure(connection_param)
            raise
        throttles = CallbackThrottles(address, signed=signed)
        try:
            connection, refused = self._authenticated_connection(request), None
        except CallbackRefused as failed:
            if failed.http_status != 401:
                raise
            connection, refused = None, failed
        hand_back_connection()  # minting waits on Zoom, and must not hold a pool connection meanwhile
        throttles.check(connection_param, connection)
        if refused is not None:
            raise refused
        self.audit["connection_id"] = connection.pk
        self.audit["grant_id"] = getattr(connection, "grant_id", None)

        meeting_id = ""
        if kind in (CallbackLog.Kind.OBF, CallbackLog.Kind.JOIN_TOKEN):
            meeting_id = request.query_params.get("meeting_id", "").replace(" ", "")
            self.audit["meeting_id"] = meeting_id[:20]
            if not MEETING_ID.match(meeting_id):
                raise CallbackRefused(400, "meeting_id is missing or is not a Zoom meeting number (9 to 13 digits).")
        if self.audit["grant_id"] is not None:
            _check_grant_scope(connection, kind, meeting_id)
            if kind == CallbackLog.Kind.OBF and getattr(connection, "grant_obf_candidates", ()):
                connection = _obf_authorizer(connection, meeting_id)
                self.audit["connection_id"] = connection.pk  # whose token was minted
                hand_back_connection()

        token_request = TokenRequest(
            connection=connection,
            kind=kind,
            meeting_id=meeting_id,
            bypass_waiting_room=request.query_params.get("bypass_waiting_room", "").lower() in ("1", "true", "yes"),
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

    def _authenticated_connection(self, request) -> ZoomConnection:
        """The one read of the connection row per request (the refresh path re-reads under a lock).

        Django's CONN_HEALTH_CHECKS would spend a round trip per request proving a reused database
        connection alive before this read. Here the read itself is the check: on a connection that
        died (a PostgreSQL restart, a failover) it is retried once on a fresh one.
        """
        by_grant = "grant" in request.query_params
        try:
            public_id = uuid.UUID(request.query_params.get("grant" if by_grant else "connection", ""))
        except ValueError:
            raise CallbackRefused(401, UNKNOWN) from None
        db.health_check_done = True
        connection = self._connection_row(public_id, by_grant=by_grant)
        raw = request.query_params.get("auth_token", "")
        if connection is None:
            raise CallbackRefused(401, UNKNOWN)
        if by_grant:
            if not secret_matches(raw, connection.grant_secret_hash):
                raise CallbackRefused(401, UNKNOWN)
            if not connection.grant_expires_at > timezone.now():
                raise CallbackRefused(401, ENDED)
        elif not connection.check_callback_secret(raw):
            raise CallbackRefused(401, UNKNOWN)
        return connection

    def _connection_row(self, public_id: uuid.UUID, *, by_grant: bool) -> ZoomConnection | None:
        """The row from this process's row cache (zoomauth/rowcache.py: kept while PostgreSQL's
        notices say nothing changed it), else from the database."""
        key = f"{'grant' if by_grant else 'connection'}:{public_id}"
        cached = rowcache.rows.get(key)
        if cached is not None:
            return _connection_from(cached[1], by_grant=by_grant)
        mark = rowcache.rows.mark()
        query = GRANT_READ if by_grant else HOT_PATH_READ
        try:
            values = self._read_connection(query, public_id)
        except (InterfaceError, DatabaseError) as exc:
            if db.in_atomic_block or db.is_usable():
                raise
            logger.info("database connection was dead; reconnecting", extra={"error": type(exc).__name__})
            db.close()
            values = self._read_connection(query, public_id)
        if values is None:
            return None
        if not db.in_atomic_block and rowcache.rows.usable():  # never a row a transaction may roll back
            rowcache.rows.put(key, values[0], values, mark)
        return _connection_from(values, by_grant=by_grant)

    @staticmethod
    def _read_connection(query: str, public_id: uuid.UUID) -> tuple | None:
        """The row's values as the model holds them: one cursor, then each column through its
        field's and the backend's converters as any read of the model would (the access token is
        decrypted). The QuerySet equivalent, and raw()'s column mapping redone on every request,
        were a third of this view's CPU under load."""
        params = [ZoomConnection._meta.get_field("public_id").get_db_prep_value(public_id, db)]
        with db.cursor() as cursor:
            cursor.execute(query, params)
            row = cursor.fetchone()
        if row is None:
            return None
        values = list(row)
        for position, column, converters in _column_converters():
            if position < len(values):
                for converter in converters:
                    values[position] = converter(values[position], column, db)
        if len(values) > len(HOT_PATH_COLUMNS):  # a bot's URL: its grant's columns follow
            for offset in (2, 5):  # the kinds, the OBF candidates (jsonb, as text or parsed)
                value = values[len(HOT_PATH_COLUMNS) + offset]
                values[len(HOT_PATH_COLUMNS) + offset] = tuple(json.loads(value) if isinstance(value, str) else value)
        return tuple(values)


def _connection_from(values: tuple, *, by_grant: bool) -> ZoomConnection:
    """A model instance of its own for each request: the columns token_issue() reads, the others
    deferred (loaded on access, which the refresh path never needs: it re-reads the row itself)."""
    connection = ZoomConnection.from_db(db.alias, HOT_PATH_COLUMNS, values[: len(HOT_PATH_COLUMNS)])
    if by_grant:
        (
            connection.grant_id,
            connection.grant_secret_hash,
            connection.grant_kinds,
            connection.grant_meeting_id,
            connection.grant_expires_at,
            connection.grant_obf_candidates,
        ) = values[len(HOT_PATH_COLUMNS) :]
    return connection


@functools.cache
def _column_converters() -> list[tuple[int, object, list]]:
    """(position, column, converters) of each column read that has any (the connection's, then a
    grant's expiry), as the ORM's compiler finds them; worked out once per process."""
    columns = [ZoomConnection._meta.get_field(name).get_col(ZoomConnection._meta.db_table) for name in HOT_PATH_COLUMNS]
    columns += [None] * 4 + [CallbackGrant._meta.get_field("expires_at").get_col(CallbackGrant._meta.db_table)]
    found = []
    for position, column in enumerate(columns):
        converters = db.ops.get_db_converters(column) + column.get_db_converters(db) if column is not None else []
        if converters:
            found.append((position, column, converters))
    return found


def _obf_authorizer(connection: ZoomConnection, meeting_id: str) -> ZoomConnection:
    """A bot with OBF candidates: the first of [its launcher, its candidates] who is in the meeting
    now (and, for a candidate, still allows it), else its launcher."""
    from .presence import connections_present

    present = connections_present(
        meeting_id=meeting_id, connection_ids=[connection.pk, *connection.grant_obf_candidates]
    )
    if not present or present[0] == connection.pk:
        return connection
    launcher_user = ZoomConnection.objects.filter(pk=connection.pk).values("user_id")
    usable = {
        candidate.pk: candidate
        for candidate in ZoomConnection.objects.active()
        .filter(pk__in=present)
        .filter(Q(allow_obf_for_others=True) | Q(user_id=Subquery(launcher_user)))
    }
    return next((usable[pk] for pk in present if pk in usable), connection)


def _check_grant_scope(connection: ZoomConnection, kind: str, meeting_id: str) -> None:
    """A bot's URL serves only the kinds it was launched with, and only for its meeting."""
    if kind not in connection.grant_kinds:
        raise CallbackRefused(403, f"This bot's URL is not for {kind} tokens.")
    if meeting_id and meeting_id != connection.grant_meeting_id:
        raise CallbackRefused(403, "This bot's URL is for another meeting.")
