"""The token callbacks Recall GETs just before a bot joins (and, for customer-managed OAuth,
whenever it needs an access token).

Success is 200 with the bare token as text/plain. Anything else is a short plain-text reason
with a fitting status; never a 200 without a token. Statuses:
400 bad meeting id or too many query parameters · 401 bad secret or signature · 404 no usable
connection or no such meeting · 405 a method other than GET or HEAD (neither audited nor counted) ·
409 Zoom refused to mint (scope, user not in the meeting, not the host) · 410 the connection needs
reconnecting · 429 throttled · 502/503 Zoom failing (Retry-After).

This view owns the HTTP side: throttles, authentication, the audit and the mapping from a
token error's category to a status. What token to hand out is zoomauth.tokens' business.
The path is kept lean because bots wait on it: one row read, the throttles in one Redis round
trip (two for unsigned requests: their address limits are checked before the row is read, so a
locked-out or over-limit caller costs no database read), no content negotiation, and the audit row
written in batches after the answer is sent (audit.py).
"""

import functools
import json
import logging
import re
import time
import uuid

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
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
from brokerproject.arrival import arrived_at
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
    "g.expires_at AS grant_expires_at, g.bypass_waiting_room AS grant_bypass_waiting_room, "
    "g.obf_candidates AS grant_obf_candidates "
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


ALLOWED_METHODS = ("GET", "HEAD")


class CallbackRefused(Exception):
    """`stale`: a 401 for a URL the broker knows (a rotated secret, an ended bot URL), as opposed
    to an id nobody was given."""

    def __init__(self, http_status: int, message: str, *, retry_after: int | None = None, stale: bool = False):
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after
        self.stale = stale


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
        rates = api_settings.DEFAULT_THROTTLE_RATES
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

    def after_read(self, connection: ZoomConnection | None, refused: CallbackRefused | None) -> None:
        """Count this request's outcome (`connection` is None when its secret failed, `refused`
        says why) and refuse it (429) when a limit is over. One round trip."""
        windows, bump = [], []
        if self.signed or refused is not None:
            windows.append(self.url_failures)
            bump.append(refused is not None)  # a failure counts against the lockout it is checked by
        if refused is not None and not self.signed and not refused.stale:
            windows.append(self.address_failures)
            bump.append(True)
        per_connection = None
        if connection is not None:
            per_connection = Window.for_rate(
                "callback_connection", str(connection.pk), self.rates["callback_connection"]
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
            response = self._refusal(CallbackRefused(405, "Token callbacks answer GET only."))
            response["Allow"] = ", ".join(ALLOWED_METHODS)
            response._has_been_logged = True
            return response
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
        budget = Budget(settings.CALLBACK_TIME_BUDGET, since=self.arrived_at)
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
            connection, refused = self._authenticated_connection(request), None
        except CallbackRefused as failed:
            if failed.http_status != 401:
                raise
            connection, refused = None, failed
        hand_back_connection()  # minting waits on Zoom, and must not hold a pool connection meanwhile
        throttles.after_read(connection, refused)
        if refused is not None:
            raise refused
        self.audit["connection_id"] = connection.pk
        self.audit["grant_id"] = getattr(connection, "grant_id", None)

        meeting_id = self._meeting_id(request, kind)
        if self.audit["grant_id"] is not None:
            _check_grant_scope(connection, kind, meeting_id)
            bypass_waiting_room = connection.grant_bypass_waiting_room  # the launch decided
            if kind == CallbackLog.Kind.OBF and getattr(connection, "grant_obf_candidates", ()):
                connection = _obf_authorizer(connection, meeting_id)
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
                raise CallbackRefused(401, UNKNOWN, stale=True)
            if not connection.grant_expires_at > timezone.now():
                raise CallbackRefused(401, ENDED, stale=True)
        elif not connection.check_callback_secret(raw):
            raise CallbackRefused(401, UNKNOWN, stale=True)
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
            for offset in (2, 6):  # the kinds, the OBF candidates (jsonb, as text or parsed)
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
            connection.grant_bypass_waiting_room,
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
