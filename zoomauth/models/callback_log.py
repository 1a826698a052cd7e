from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from .connections import ZoomConnection


class CallbackLogQuerySet(models.QuerySet["CallbackLog"]):
    def expired(self, *, now: datetime | None = None):
        return self.filter(created_at__lt=(now or timezone.now()) - settings.CALLBACK_LOG_RETENTION)


class CallbackLog(models.Model):
    """One token callback served (or refused). Never the token itself."""

    class Kind(models.TextChoices):
        ACCESS_TOKEN = "access-token", "Access token"
        ZAK = "zak", "ZAK"
        OBF = "obf", "OBF token"
        JOIN_TOKEN = "join-token", "Join token (local recording)"

    connection = models.ForeignKey(
        ZoomConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="callback_logs"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    meeting_id = models.CharField(max_length=20, blank=True)
    # The bot's credential the request came with (None: the connection's own secret).
    grant = models.ForeignKey(
        "CallbackGrant", null=True, blank=True, on_delete=models.SET_NULL, related_name="callback_logs"
    )
    status_code = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=200)
    latency_ms = models.PositiveIntegerField()
    zoom_calls = models.PositiveSmallIntegerField(default=0)
    signature_checked = models.BooleanField(default=False)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = CallbackLogQuerySet.as_manager()

    class Meta:
        verbose_name = "token callback"
        ordering = ("-created_at",)
        # A connection's last callback (the admin list shows it beside each connection).
        indexes = [models.Index(fields=["connection", "-created_at"], name="callback_by_connection")]

    def __str__(self) -> str:
        return f"{self.kind} {self.status_code}"


class CallbackHourStat(models.Model):
    """Token callbacks counted per hour, kind and latency bucket, as the audit writer writes them:
    what the admin overview reads, so that its figures cost a few hundred rows, not a scan of a
    day of callbacks. Pruned with the callbacks."""

    BUCKET_MS = 25
    LAST_BUCKET = 400  # 10 s and beyond

    hour = models.DateTimeField()
    kind = models.CharField(max_length=20, choices=CallbackLog.Kind.choices)
    latency_bucket = models.PositiveSmallIntegerField()
    answered = models.PositiveIntegerField(default=0)
    answered_200 = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "token callbacks per hour"
        constraints = [
            models.UniqueConstraint(fields=["hour", "kind", "latency_bucket"], name="one_stat_per_hour_kind_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.hour:%Y-%m-%d %H}h: {self.answered}"

    @classmethod
    def bucket_of(cls, latency_ms: int) -> int:
        return min(latency_ms // cls.BUCKET_MS, cls.LAST_BUCKET)
