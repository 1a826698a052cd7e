import base64
import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from brokerproject.crypto import StrictEncryptedTextField
from brokerproject.retry import backoff
from zoomauth.models import ZoomApp, ZoomConnection


class DeliveryQuerySet(models.QuerySet["ZoomWebhookDelivery"]):
    def due(self, *, now: datetime | None = None):
        """Pending deliveries whose next attempt is due (or overdue: lost from the queue)."""
        return self.filter(status=ZoomWebhookDelivery.Status.PENDING, next_attempt_at__lte=now or timezone.now())

    def body_no_longer_needed(self):
        return self.filter(
            status__in=ZoomWebhookDelivery.BODY_DONE_STATUSES, processed_at__isnull=False, body_cleared_at__isnull=True
        )

    def clear_bodies(self, *, now: datetime | None = None) -> int:
        return self.body_no_longer_needed().update(body=b"", body_cleared_at=now or timezone.now())

    def mark_resolved(self, *, note: str, now: datetime | None = None) -> int:
        """Staff's "stop retrying": nothing will send these bytes again."""
        now = now or timezone.now()
        with transaction.atomic():
            count = self.exclude(status=ZoomWebhookDelivery.Status.DELIVERED).update(
                status=ZoomWebhookDelivery.Status.RESOLVED, last_error=note[:300]
            )
            self.clear_bodies(now=now)
        return count

    def prunable(self, *, now: datetime | None = None):
        """Finished deliveries older than ZOOM_WEBHOOK_RETENTION (pending ones are still being tried)."""
        cutoff = (now or timezone.now()) - settings.ZOOM_WEBHOOK_RETENTION
        return self.exclude(status=ZoomWebhookDelivery.Status.PENDING).filter(received_at__lt=cutoff)


class ZoomWebhookDelivery(models.Model):
    """A Zoom event as received: the exact bytes and the headers that must travel with them.

    Every Zoom event may carry personal data (a guest's name and email in participant events, a
    profile in user.updated, ...), so the bytes are kept only while something still needs them:
    until the event is handled locally and its forward is delivered or resolved by staff. Then the
    body is cleared in the step that records that outcome; body_sha256 stays, so a retry of the
    same event from Zoom is still a duplicate. A failed forward keeps its body for staff's replay
    until the row is pruned (ZOOM_WEBHOOK_RETENTION)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        RESOLVED = "resolved", "Resolved by staff"

    # Outcomes after which the bytes are never sent again (a failed forward may be replayed).
    BODY_DONE_STATUSES = (Status.DELIVERED, Status.RESOLVED)

    app = models.ForeignKey(ZoomApp, on_delete=models.CASCADE, related_name="webhook_deliveries")
    connection = models.ForeignKey(
        ZoomConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_deliveries"
    )
    event = models.CharField(max_length=100, blank=True)
    body = models.BinaryField()
    body_sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=100, default="application/json")
    zm_request_timestamp = models.CharField(max_length=20)
    zm_signature = models.CharField(max_length=100)
    target_url = models.URLField(max_length=500, blank=True, help_text="Where it goes (Recall's per-app webhook URL).")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Who holds the forward's claim (brokerproject.claims, on next_attempt_at): the POST runs
    # under no row lock, and only this holder may record its outcome.
    claim_holder = models.UUIDField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True, help_text="When local handling ran.")
    body_cleared_at = models.DateTimeField(
        null=True, blank=True, help_text="When the body was cleared (forwarded or resolved, and handled)."
    )

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = "Zoom webhook delivery"
        verbose_name_plural = "Zoom webhook deliveries"
        ordering = ("-received_at",)
        constraints = [
            # Zoom's retries of one event carry the same body (event_ts included): keep one.
            models.UniqueConstraint(
                fields=["app", "target_url", "body_sha256"], name="one_delivery_per_event_and_target"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["received_at"], name="delivery_received"),
            # Each event's handling asks whether a retry of it (same body) was handled already:
            # without this it read every row of the app (the constraint's middle column is the target).
            models.Index(fields=["app", "body_sha256"], name="delivery_by_body"),
            # Beat's sweep of events whose handling was lost reads only the unhandled ones.
            models.Index(fields=["received_at"], name="delivery_unhandled", condition=Q(processed_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.event or 'event'} → {self.get_status_display()}"

    @staticmethod
    def digest(body: bytes) -> str:
        return hashlib.sha256(body).hexdigest()

    @property
    def body_size(self) -> int:
        return len(self.body or b"")

    def clear_body_if_done(self, *, now: datetime | None = None) -> bool:
        """Forget the bytes once forwarded (or resolved) and handled; the caller saves."""
        if self.status not in self.BODY_DONE_STATUSES or self.processed_at is None or self.body_cleared_at:
            return False
        self.body = b""
        self.body_cleared_at = now or timezone.now()
        return True

    def give_up_at(self) -> datetime:
        return self.received_at + settings.WEBHOOK_FORWARD_PERIOD

    # Recall and Zoom say nothing about 408/425; treat them like 429 and 5xx: try again later.
    RETRYABLE_STATUSES = frozenset({408, 425, 429})
    # What record_attempt changes: the forward stores exactly these, fenced by its claim.
    ATTEMPT_FIELDS = ("attempts", "status", "delivered_at", "last_error", "next_attempt_at")

    def record_attempt(self, *, status_code: int | None, error: str, retry_after: float | None) -> float | None:
        """One forward's outcome on this delivery (not saved: the caller stores ATTEMPT_FIELDS
        under its claim). Returns the delay before the next try, or None when finished."""
        self.attempts += 1
        if status_code is not None and 200 <= status_code < 300:
            self.status = self.Status.DELIVERED
            self.delivered_at = timezone.now()
            self.last_error = ""
        elif status_code is None or status_code >= 500 or status_code in self.RETRYABLE_STATUSES:
            self.last_error = error or f"HTTP {status_code}"
            if self.schedule_retry(retry_after=retry_after):
                return max(0.0, (self.next_attempt_at - timezone.now()).total_seconds())
            self.status = self.Status.FAILED
            self.last_error = f"gave up after {self.attempts} attempts: {self.last_error}"[:300]
        else:
            self.status = self.Status.FAILED
            self.last_error = f"HTTP {status_code}: refused by the target"
        return None

    def schedule_retry(self, *, retry_after: float | None = None, now: datetime | None = None) -> bool:
        """Exponential backoff with full jitter; False once the forwarding period is over."""
        now = now or timezone.now()
        delay = backoff(self.attempts, base=10.0, cap=3600.0, retry_after=retry_after)
        when = now + timedelta(seconds=delay)
        if when > self.give_up_at():
            return False
        self.next_attempt_at = when
        return True


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(ZoomWebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    error = models.CharField(max_length=300, blank=True)
    attempted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-attempted_at",)

    def __str__(self) -> str:
        return f"{self.status_code or self.error}"


class WebhookRejection(models.Model):
    """A refused Zoom request: why and when (never the body)."""

    app = models.ForeignKey(ZoomApp, null=True, blank=True, on_delete=models.CASCADE, related_name="webhook_rejections")
    reason = models.CharField(max_length=200)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    rejected_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-rejected_at",)

    def __str__(self) -> str:
        return self.reason


class ExtraForwardTarget(models.Model):
    """Another place that receives every Zoom event of an app, unmodified."""

    app = models.ForeignKey(ZoomApp, on_delete=models.CASCADE, related_name="extra_forward_targets")
    url = models.URLField(max_length=500)
    enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.url


# --- events to the customer's backend --------------------------------------------------------


class EventEndpoint(models.Model):
    """A URL of the customer's backend that receives the broker's events, signed with its secret."""

    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    secret = StrictEncryptedTextField(editable=False, help_text="whsec_… made by the broker, shown once.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "event endpoint"

    def __str__(self) -> str:
        return self.description or self.url

    @staticmethod
    def new_secret() -> str:
        return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Event(models.Model):
    class Type(models.TextChoices):
        CONNECTION_CONNECTED = "connection.connected"
        CONNECTION_NEEDS_RECONNECT = "connection.needs_reconnect"
        CONNECTION_REVOKED = "connection.revoked"
        CONNECTION_CLAIM_REFUSED = "connection.claim_refused"
        BOT_STATUS_CHANGED = "bot.status_changed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=50, choices=Type.choices)
    connection = models.ForeignKey(
        ZoomConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    data = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.type} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def message_id(self) -> str:
        return f"msg_{self.public_id.hex}"


class EventDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(EventEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Who holds the send's claim (brokerproject.claims, on next_attempt_at); only it records the answer.
    claim_holder = models.UUIDField(null=True, blank=True, editable=False)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "event delivery"
        verbose_name_plural = "event deliveries"
        ordering = ("-created_at",)
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="one_delivery_per_event_endpoint")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="event_delivery_due")]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint}"

    # What record_attempt changes: the send stores exactly these, fenced by its claim.
    ATTEMPT_FIELDS = (
        *("attempts", "last_attempt_at", "last_status_code", "last_error"),
        *("status", "delivered_at", "next_attempt_at"),
    )

    def record_attempt(self, *, status_code: int | None, error: str = "") -> float | None:
        """One send's answer (`status_code` None: no answer, `error` says why), not saved: the
        caller stores ATTEMPT_FIELDS under its claim. Returns the delay before the next try, or
        None when finished: delivered on 2xx, failed once EVENT_RETRY_PERIOD has passed."""
        now = timezone.now()
        self.attempts += 1
        self.last_attempt_at = now
        self.last_status_code = status_code
        succeeded = status_code is not None and 200 <= status_code < 400
        self.last_error = "" if succeeded else (error or f"HTTP {status_code}")[:300]
        if succeeded:
            self.status, self.delivered_at = self.Status.DELIVERED, now
            return None
        if now - self.event.created_at > settings.EVENT_RETRY_PERIOD:
            self.status = self.Status.FAILED
            return None
        delay = backoff(self.attempts, base=10.0, cap=3600.0)
        self.next_attempt_at = now + timedelta(seconds=delay)
        return delay

    def _same_line(self):
        """Deliveries to the same endpoint about the same connection (events without one: none)."""
        if self.event.connection_id is None:
            return EventDelivery.objects.none()
        return EventDelivery.objects.filter(endpoint_id=self.endpoint_id, event__connection_id=self.event.connection_id)

    def earlier_pending(self):
        return self._same_line().filter(status=self.Status.PENDING, event__created_at__lt=self.event.created_at)

    def next_in_line(self) -> int | None:
        following = (
            self._same_line()
            .filter(status=self.Status.PENDING, event__created_at__gte=self.event.created_at)
            .exclude(pk=self.pk)
            .order_by("event__created_at", "pk")
            .values_list("pk", flat=True)
            .first()
        )
        return following
