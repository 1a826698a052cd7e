"""Meeting presence: which connected users are in which meeting now, from Zoom's meeting.started,
meeting.ended, meeting.participant_joined and meeting.participant_left events.

Zoom sends these only for meetings whose host is in the app's account or has added the app.
Participants are matched to connections of the same app by Zoom user id (`participant.id`,
`participant_user_id`), never by name or email: a guest can type either. Nothing is kept about
anyone else but a count. Zoom retries, and events come late and out of order: each time kept is
the latest of its kind by the event's own time (`event_ts`), so any order of the same events
leaves the same presence. Apps that act on presence (recallbots: bots waiting for their user)
connect to the signals below; they are sent after the commit that recorded the change.
"""

import functools
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .models import MeetingActivity, MeetingPresence, ZoomApp, ZoomConnection

STARTED = "meeting.started"
ENDED = "meeting.ended"
JOINED = "meeting.participant_joined"
LEFT = "meeting.participant_left"
PRESENCE_EVENTS = frozenset({STARTED, ENDED, JOINED, LEFT})

user_joined = Signal()  # kwargs: app_id, meeting_id, connection_id, at
user_left = Signal()  # kwargs: app_id, meeting_id, connection_id, at
meeting_ended = Signal()  # kwargs: app_id, meeting_id, at
# A signal to send once the transaction commits, with its kwargs less app_id and meeting_id.
Notice = tuple[Signal, dict[str, Any]]


def _event_time(event_ts, fallback) -> datetime:
    """Zoom's event_ts (milliseconds), else the participant's join/leave time, else now."""
    if isinstance(event_ts, int | float) and not isinstance(event_ts, bool) and 0 < event_ts < 1e14:
        return datetime.fromtimestamp(event_ts / 1000, tz=UTC)
    if isinstance(fallback, str):
        try:
            parsed = parse_datetime(fallback)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)
    return timezone.now()


def _zoom_user_ids(participant: dict) -> list[str]:
    # `user_id` is the participant's id in this meeting, not a Zoom user id: never matched.
    values = (participant.get("id"), participant.get("participant_user_id"))
    return [str(value)[:64] for value in values if isinstance(value, str | int) and str(value)]


def _later(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at > current else current


def presence_record(*, app: ZoomApp, kind: str, obj: dict, event_ts=None) -> ZoomConnection | None:
    """Apply one meeting event. Returns the connected user it concerns, if any."""
    meeting_id = str(obj.get("id") or "")[:20]
    if kind not in PRESENCE_EVENTS or not meeting_id.isdigit():
        return None
    participant = obj.get("participant")
    if not isinstance(participant, dict):
        participant = {}
    fallback = participant.get("join_time") if kind == JOINED else participant.get("leave_time")
    at = _event_time(event_ts, fallback if kind in (JOINED, LEFT) else obj.get("start_time"))
    connection = None
    if kind in (JOINED, LEFT) and (ids := _zoom_user_ids(participant)):
        connection = (
            ZoomConnection.objects.filter(app=app, zoom_user_id__in=ids)
            .exclude(status=ZoomConnection.Status.REVOKED)
            .first()
        )
    notices: list[Notice] = []
    with transaction.atomic():
        MeetingActivity.objects.get_or_create(app=app, meeting_id=meeting_id, defaults={"last_event_at": at})
        # One meeting's events are applied one at a time (short transactions; no remote call).
        activity = MeetingActivity.objects.select_for_update().get(app=app, meeting_id=meeting_id)
        activity.last_event_at = _later(activity.last_event_at, at)
        if kind == STARTED:
            activity.started_at = _later(activity.started_at, at)
        elif kind == ENDED:
            if activity.ended_at is None or at > activity.ended_at:
                activity.ended_at = at
                activity.others_count = 0
                present = list(activity.presences.present().filter(joined_at__lt=at))
                activity.presences.filter(Q(left_at__isnull=True) | Q(left_at__lt=at)).update(left_at=at)
                notices += [(user_left, {"connection_id": p.connection_id, "at": at}) for p in present]
                notices.append((meeting_ended, {"at": at}))
        else:
            if kind == JOINED:
                activity.started_at = _later(activity.started_at, at)  # a join says it runs
            if connection is not None:
                notices += _record_participant(activity, connection, joined=kind == JOINED, at=at)
            elif not activity.closed_by_end(at):
                activity.others_count += 1 if kind == JOINED else -1
        activity.save()
        for signal, kwargs in notices:
            transaction.on_commit(
                functools.partial(signal.send, sender=MeetingActivity, app_id=app.pk, meeting_id=meeting_id, **kwargs)
            )
    return connection


def _record_participant(
    activity: MeetingActivity, connection: ZoomConnection, *, joined: bool, at: datetime
) -> list[Notice]:
    presence, _ = MeetingPresence.objects.get_or_create(meeting=activity, connection=connection)
    was_present = presence.is_present
    if joined:
        presence.joined_at = _later(presence.joined_at, at)
    else:
        presence.left_at = _later(presence.left_at, at)
    if activity.ended_at is not None and presence.joined_at is not None and presence.joined_at <= activity.ended_at:
        presence.left_at = _later(presence.left_at, activity.ended_at)  # the end closed it
    presence.save(update_fields=["joined_at", "left_at"])
    if presence.is_present and not was_present:
        return [(user_joined, {"connection_id": connection.pk, "at": presence.joined_at})]
    if was_present and not presence.is_present:
        return [(user_left, {"connection_id": connection.pk, "at": presence.left_at})]
    return []


# --- reads -----------------------------------------------------------------------------------


def meeting_visible(*, app_id: int, meeting_id: str) -> bool:
    """Does Zoom tell this app about the meeting? Yes when an event for it has come, or its host
    is a connected user of the app (meeting.created or the PMI)."""
    from .selectors import connection_for_meeting

    if not meeting_id:
        return False
    if MeetingActivity.objects.filter(app_id=app_id, meeting_id=meeting_id).exists():
        return True
    host = connection_for_meeting(meeting_id=meeting_id)
    return host is not None and host.app_id == app_id


def connections_present(*, meeting_id: str, connection_ids: list[int]) -> list[int]:
    """Those of `connection_ids` that are in the meeting now, in the order given."""
    if not meeting_id or not connection_ids:
        return []
    present = set(
        MeetingPresence.objects.present()
        .filter(meeting__meeting_id=meeting_id, connection_id__in=connection_ids)
        .values_list("connection_id", flat=True)
    )
    return [pk for pk in connection_ids if pk in present]


def meeting_has_ended(*, app_id: int, meeting_id: str) -> bool:
    """Zoom said meeting.ended for it, and it has not started again since."""
    activity = MeetingActivity.objects.filter(app_id=app_id, meeting_id=meeting_id).first()
    return activity is not None and activity.ended_at is not None and not activity.is_running


def meeting_ended_since(*, app_id: int, meeting_id: str, since: datetime) -> bool:
    """Has Zoom said meeting.ended for it after `since`? A PMI or a recurring meeting keeps its
    number: an end after `since` closed the instance that was running then, even if it runs again."""
    return MeetingActivity.objects.filter(app_id=app_id, meeting_id=meeting_id, ended_at__gt=since).exists()


def connection_left_since(*, app_id: int, meeting_id: str, connection_id: int, since: datetime) -> bool:
    """Has this user left the meeting after `since` (whether or not they are back)?"""
    return MeetingPresence.objects.filter(
        meeting__app_id=app_id, meeting__meeting_id=meeting_id, connection_id=connection_id, left_at__gt=since
    ).exists()


def meeting_activity_prune(*, now: datetime | None = None) -> int:
    deleted, _ = MeetingActivity.objects.stale(now=now).delete()
    return deleted
