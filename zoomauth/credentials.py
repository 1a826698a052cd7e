"""The credential a token callback presents: a connection's URL (its id and secret) or a bot's
grant URL (the grant's id and the bot's own secret), read and checked in one place.

The callback path is kept lean because bots wait on it: one row read per request (none while the
per-process row cache, zoomauth/rowcache.py, holds the row), through one cursor and the ORM's own
converters, and the view gets a frozen CallbackCredential: the connection's id, the grant's scope
and, on demand, a model instance of the connection built from the same values (no query) for
token_issue() and the refresh path.
"""

import functools
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError, InterfaceError, models
from django.db import connection as db
from django.db.models.expressions import Col
from django.utils import timezone

from brokerproject.crypto import secret_matches

from . import rowcache
from .models import CallbackGrant, ZoomConnection

logger = logging.getLogger(__name__)

UNKNOWN = "Unknown connection or wrong auth_token."
ENDED = "This bot's token URL has ended (the bot finished, or its user reconnected or disconnected Zoom)."

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
_SECRET_HASH = HOT_PATH_COLUMNS.index("callback_secret_hash")


class CredentialRefused(Exception):
    """No such credential, or a wrong secret (401). `stale`: a URL the broker knows (a rotated
    secret, an ended bot URL), as opposed to an id nobody was given."""

    def __init__(self, message: str, *, stale: bool = False):
        super().__init__(message)
        self.stale = stale


class OutOfScope(Exception):
    """A bot's URL asked for a kind or a meeting it was not launched for (403)."""


@dataclass(frozen=True)
class Grant:
    """A bot's own URL credential: what its launch allowed."""

    id: int
    kinds: tuple[str, ...]
    meeting_id: str
    expires_at: datetime
    bypass_waiting_room: bool
    obf_candidates: tuple[int, ...]
    secret_hash: str = field(repr=False)


@dataclass(frozen=True)
class CallbackCredential:
    connection_id: int
    grant: Grant | None
    # The connection's HOT_PATH_COLUMNS as read (the access token decrypted): never in a repr.
    values: tuple = field(repr=False, compare=False)

    def authenticate(self, secret: str) -> None:
        if self.grant is None:
            if not secret_matches(secret, self.values[_SECRET_HASH]):
                raise CredentialRefused(UNKNOWN, stale=True)
            return
        if not secret_matches(secret, self.grant.secret_hash):
            raise CredentialRefused(UNKNOWN, stale=True)
        if not self.grant.expires_at > timezone.now():
            raise CredentialRefused(ENDED, stale=True)

    def check_scope(self, *, kind: str, meeting_id: str) -> None:
        """A bot's URL serves only the kinds it was launched with, and only for its meeting."""
        if self.grant is None:
            return
        if kind not in self.grant.kinds:
            raise OutOfScope(f"This bot's URL is not for {kind} tokens.")
        if meeting_id and meeting_id != self.grant.meeting_id:
            raise OutOfScope("This bot's URL is for another meeting.")

    def connection(self) -> ZoomConnection:
        """A model instance of its own for each call, built without a query: the columns
        token_issue() reads, the others deferred (loaded on access, which the refresh path never
        needs: it re-reads the row itself)."""
        return ZoomConnection.from_db(db.alias, HOT_PATH_COLUMNS, self.values)


def callback_credential(*, public_id: str, by_grant: bool, secret: str) -> CallbackCredential:
    """The credential behind a callback's `connection` (or, `by_grant`, its `grant`) parameter,
    its secret checked; CredentialRefused otherwise.

    Django's CONN_HEALTH_CHECKS would spend a round trip per request proving a reused database
    connection alive before this read. Here the read itself is the check: on a connection that
    died (a PostgreSQL restart, a failover) it is retried once on a fresh one.
    """
    try:
        parsed = uuid.UUID(public_id)
    except ValueError:
        raise CredentialRefused(UNKNOWN) from None
    db.health_check_done = True  # type: ignore[attr-defined]  # Django's own flag (BaseDatabaseWrapper.__init__), not in the stubs
    values = _row(parsed, by_grant=by_grant)
    if values is None:
        raise CredentialRefused(UNKNOWN)
    credential = _credential_from(values, by_grant=by_grant)
    credential.authenticate(secret)
    return credential


def obf_authorizer(credential: CallbackCredential, launcher: ZoomConnection, meeting_id: str) -> ZoomConnection:
    """A bot with OBF candidates: the first of [its launcher, its candidates] who is in the meeting
    now (and, for a candidate, still allows it), else its launcher."""
    from .presence import connections_present

    candidates = credential.grant.obf_candidates if credential.grant is not None else ()
    present = connections_present(meeting_id=meeting_id, connection_ids=[launcher.pk, *candidates])
    if not present or present[0] == launcher.pk:
        return launcher
    usable = {c.pk: c for c in ZoomConnection.objects.obf_authorizers_for(launcher.pk).filter(pk__in=present)}
    return next((usable[pk] for pk in present if pk in usable), launcher)


# --- the one row read ------------------------------------------------------------------------


def _row(public_id: uuid.UUID, *, by_grant: bool) -> tuple | None:
    """The row from this process's row cache (kept while PostgreSQL's notices say nothing changed
    it), else from the database."""
    key = f"{'grant' if by_grant else 'connection'}:{public_id}"
    cached = rowcache.rows.get(key)
    if cached is not None:
        return cached[1]
    mark = rowcache.rows.mark()
    query = GRANT_READ if by_grant else HOT_PATH_READ
    try:
        values = _read_row(query, public_id)
    except (InterfaceError, DatabaseError) as exc:
        if db.in_atomic_block or db.is_usable():
            raise
        logger.info("database connection was dead; reconnecting", extra={"error": type(exc).__name__})
        db.close()
        values = _read_row(query, public_id)
    if values is None:
        return None
    if not db.in_atomic_block and rowcache.rows.usable():  # never a row a transaction may roll back
        rowcache.rows.put(key, values[0], values, mark)
    return values


def _read_row(query: str, public_id: uuid.UUID) -> tuple | None:
    """The row's values as the model holds them: one cursor, then each column through its
    field's and the backend's converters as any read of the model would (the access token is
    decrypted). The QuerySet equivalent, and raw()'s column mapping redone on every request,
    were a third of the callback's CPU under load."""
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


def _credential_from(values: tuple, *, by_grant: bool) -> CallbackCredential:
    connection_values = values[: len(HOT_PATH_COLUMNS)]
    grant = None
    if by_grant:
        grant_id, secret_hash, kinds, meeting_id, expires_at, bypass, candidates = values[len(HOT_PATH_COLUMNS) :]
        grant = Grant(
            id=grant_id,
            kinds=kinds,
            meeting_id=meeting_id,
            expires_at=expires_at,
            bypass_waiting_room=bypass,
            obf_candidates=candidates,
            secret_hash=secret_hash,
        )
    return CallbackCredential(connection_id=connection_values[0], grant=grant, values=connection_values)


@functools.cache
def _column_converters() -> list[tuple[int, Col, list]]:
    """(position, column, converters) of each column read that has any (the connection's, then a
    grant's expiry), as the ORM's compiler finds them; worked out once per process."""

    def col_of(model: type[models.Model], name: str) -> Col:
        concrete = model._meta.get_field(name)
        assert isinstance(concrete, models.Field)  # a column, never a relation's other side
        return concrete.get_col(model._meta.db_table)

    columns: list[Col | None] = [col_of(ZoomConnection, name) for name in HOT_PATH_COLUMNS]
    columns += [None] * 4 + [col_of(CallbackGrant, "expires_at")]
    found: list[tuple[int, Col, list]] = []
    for position, column in enumerate(columns):
        if column is None:
            continue
        converters = db.ops.get_db_converters(column) + column.get_db_converters(db)
        if converters:
            found.append((position, column, converters))
    return found
