"""Who may fetch tokens through the callback URLs: the connection's callback secret, the bots' own
callback credentials (CallbackGrant), who saw the full URLs, and the owner's choice to lend the
grant to other users' bots."""

import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from brokerproject.crypto import secret_hash

from .. import signals
from ..models import CallbackGrant, ZoomConnection


def connection_rotate_callback_secret(*, connection: ZoomConnection) -> str:
    """A new callback secret: the old URLs stop working at once. Apps holding the URLs (Recall's
    customer-managed credential) are told through callback_secret_rotated."""
    raw = connection.rotate_callback_secret()
    connection.save(
        update_fields=["callback_secret", "callback_secret_hash", "callback_secret_rotated_at", "updated_at"]
    )
    transaction.on_commit(
        lambda: signals.callback_secret_rotated.send(sender=ZoomConnection, connection_id=connection.pk)
    )
    return raw


def connection_end_secrets(connection: ZoomConnection) -> None:
    """Revoke, or a revoked connection connected again: every URL made before (the connection's
    and its bots') stops working."""
    connection.rotate_callback_secret()
    CallbackGrant.objects.filter(connection=connection).live().update(expires_at=timezone.now())


def record_reveal(*, user, connections: list[ZoomConnection], where: str) -> None:
    """Someone saw these connections' full callback URLs: written to each one's history (the
    admin's log: who and when)."""
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    if not connections:
        return
    content_type = ContentType.objects.get_for_model(ZoomConnection)
    LogEntry.objects.bulk_create(
        LogEntry(
            user_id=user.pk,
            content_type=content_type,
            object_id=str(connection.pk),
            object_repr=str(connection)[:200],
            action_flag=CHANGE,
            change_message=f"Revealed the callback URLs (with their secret) {where}.",
        )
        for connection in connections
    )


SHARING_SETTINGS = {
    "allow_join_tokens_for_others": "join tokens for other users' bots",
    "allow_obf_for_others": "OBF for other users' bots",
}


def connection_set_sharing(*, connection: ZoomConnection, by_user, changes: dict[str, bool], where: str) -> None:
    """The owner's choice to lend this grant to other users' bots (set by the owner, or relayed by
    the customer's backend): saved, and each change written to the connection's history."""
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    changed = {name: value for name, value in changes.items() if getattr(connection, name) != value}
    if not changed:
        return
    for name, value in changed.items():
        setattr(connection, name, value)
    connection.save(update_fields=[*changed, "updated_at"])
    LogEntry.objects.bulk_create(
        LogEntry(
            user_id=by_user.pk,
            content_type=ContentType.objects.get_for_model(ZoomConnection),
            object_id=str(connection.pk),
            object_repr=str(connection)[:200],
            action_flag=CHANGE,
            change_message=f"Set “{SHARING_SETTINGS[name]}” {'on' if value else 'off'} {where}.",
        )
        for name, value in changed.items()
    )


def callback_grant_issue(
    *,
    connection: ZoomConnection,
    kinds: list[str],
    meeting_id: str,
    holder: str,
    until: datetime,
    bypass_waiting_room: bool = False,
    obf_candidates: list[ZoomConnection] | None = None,
) -> tuple[CallbackGrant, str]:
    """A credential for one bot's token URLs: these kinds, from this connection, for this
    meeting, until `until` (ended earlier by callback_grants_end). Returns it and its secret,
    which is kept only hashed."""
    raw = secrets.token_urlsafe(32)
    grant = CallbackGrant.objects.create(
        connection=connection,
        secret_hash=secret_hash(raw),
        kinds=sorted(set(kinds)),
        meeting_id=meeting_id[:20],
        holder=holder[:100],
        expires_at=until,
        bypass_waiting_room=bypass_waiting_room,
        obf_candidates=[candidate.pk for candidate in obf_candidates or ()],
    )
    return grant, raw


def callback_grants_end(*, holder: str, grace: timedelta = timedelta(0)) -> int:
    """The holder (a bot) ended: its URLs work for `grace` more, then never again."""
    until = timezone.now() + grace
    return CallbackGrant.objects.filter(holder=holder[:100], expires_at__gt=until).update(expires_at=until)


def callback_grants_reopen(*, holder: str, until: datetime) -> int:
    """The holder turned out to exist after all (a bot whose create answer was lost): its URLs
    work again, while their connection's secret has not changed since."""
    return (
        CallbackGrant.objects.filter(holder=holder[:100], created_at__gte=F("connection__callback_secret_rotated_at"))
        .filter(connection__status=ZoomConnection.Status.ACTIVE)
        .update(expires_at=until)
    )
