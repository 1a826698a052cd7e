from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from .connections import ZoomConnection
from .zoom_apps import ZoomApp


class ZoomMeeting(models.Model):
    """Which connection hosts a meeting, learnt from meeting.created (for join tokens)."""

    meeting_id = models.CharField(max_length=20, unique=True)
    host_connection = models.ForeignKey(ZoomConnection, on_delete=models.CASCADE, related_name="hosted_meetings")
    topic = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.meeting_id


class MeetingActivityQuerySet(models.QuerySet["MeetingActivity"]):
    def stale(self, *, now: datetime | None = None):
        """Meetings nothing has been heard of for MEETING_ACTIVITY_RETENTION (the prune's set)."""
        return self.filter(last_event_at__lt=(now or timezone.now()) - settings.MEETING_ACTIVITY_RETENTION)


class MeetingActivity(models.Model):
    """A meeting as Zoom's meeting events for one app describe it: whether it runs, and how many
    people who are not connected users are in it (a count: nothing else is kept about them).
    Times are the events' own (Zoom's event_ts), so late and out-of-order events fall in place."""

    app = models.ForeignKey(ZoomApp, on_delete=models.CASCADE, related_name="meeting_activity")
    meeting_id = models.CharField(max_length=20)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Joins minus leaves of participants who are not connected users (below zero for a moment
    # when a leave arrives before its join).
    others_count = models.IntegerField(default=0)
    last_event_at = models.DateTimeField()

    objects = MeetingActivityQuerySet.as_manager()

    class Meta:
        verbose_name = "meeting activity"
        verbose_name_plural = "meeting activity"
        constraints = [models.UniqueConstraint(fields=["app", "meeting_id"], name="one_activity_per_app_meeting")]
        indexes = [models.Index(fields=["last_event_at"], name="activity_last_event")]

    def __str__(self) -> str:
        return f"meeting {self.meeting_id}"

    @property
    def is_running(self) -> bool:
        return self.started_at is not None and (self.ended_at is None or self.started_at > self.ended_at)

    @property
    def others_present(self) -> int:
        return max(self.others_count, 0) if self.is_running else 0

    def closed_by_end(self, at: datetime) -> bool:
        """An event from before the latest meeting.ended: that end closed what it says."""
        return self.ended_at is not None and at <= self.ended_at


class MeetingPresenceQuerySet(models.QuerySet["MeetingPresence"]):
    def present(self):
        return self.filter(joined_at__isnull=False).filter(Q(left_at__isnull=True) | Q(joined_at__gt=F("left_at")))


class MeetingPresence(models.Model):
    """A connected user in a meeting: the latest join and the latest leave by the events' own
    times (a meeting.ended counts as everyone's leave). In the meeting while the latest join is
    later than the latest leave, whatever order the events came in."""

    meeting = models.ForeignKey(MeetingActivity, on_delete=models.CASCADE, related_name="presences")
    connection = models.ForeignKey(ZoomConnection, on_delete=models.CASCADE, related_name="meeting_presences")
    joined_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)

    objects = MeetingPresenceQuerySet.as_manager()

    class Meta:
        verbose_name = "meeting presence"
        constraints = [
            models.UniqueConstraint(fields=["meeting", "connection"], name="one_presence_per_meeting_connection")
        ]

    def __str__(self) -> str:
        return f"{self.connection_id} in {self.meeting_id}"

    @property
    def is_present(self) -> bool:
        return self.joined_at is not None and (self.left_at is None or self.joined_at > self.left_at)
