from django.contrib import admin, messages
from django.utils import timezone

from brokerproject.admin_kit import HistoryInline
from brokerproject.celery import enqueue_safely

from .events import event_delivery_replay
from .models import (
    DeliveryAttempt,
    EventDelivery,
    EventEndpoint,
    ExtraForwardTarget,
    WebhookRejection,
    ZoomWebhookDelivery,
)
from .services import delivery_replay


class DeliveryAttemptInline(HistoryInline):
    model = DeliveryAttempt
    fields = ("attempted_at", "status_code", "latency_ms", "error")


@admin.register(ZoomWebhookDelivery)
class ZoomWebhookDeliveryAdmin(admin.ModelAdmin):
    """Zoom's events on their way to Recall. The body is never shown (participants' names and
    emails are in it) and is cleared once the event is forwarded and handled: staff see its size,
    hash and when it was cleared."""

    list_display = ("received_at", "app", "event", "status", "attempts", "last_error", "body_size", "connection")
    list_filter = ("status", "app", "event")
    date_hierarchy = "received_at"
    search_fields = ("body_sha256", "event")
    list_select_related = ("app", "connection")
    fields = (
        "app",
        "event",
        "connection",
        "status",
        "target_url",
        "attempts",
        "next_attempt_at",
        "last_error",
        "body_size",
        "body_cleared_at",
        "body_sha256",
        "content_type",
        "zm_request_timestamp",
        "received_at",
        "delivered_at",
        "processed_at",
    )
    readonly_fields = fields
    inlines = (DeliveryAttemptInline,)
    actions = ("replay_now", "mark_resolved")

    def has_add_permission(self, request):
        return False

    @admin.display(description="body size (bytes)")
    def body_size(self, obj):
        return obj.body_size

    @admin.action(description="Replay now", permissions=["change"])
    def replay_now(self, request, queryset):
        queued = skipped = 0
        for delivery in queryset.exclude(target_url=""):
            if delivery_replay(delivery=delivery):
                enqueue_safely("webhooks.tasks.delivery_attempt", delivery.pk)
                queued += 1
            else:
                skipped += 1
        if queued:
            messages.success(request, f"Queued {queued} delivery(ies) for delivery.")
        if skipped:
            messages.warning(
                request, f"{skipped} delivery(ies) not replayed: their body was cleared once forwarded and handled."
            )

    @admin.action(description="Mark resolved (stop retrying)", permissions=["change"])
    def mark_resolved(self, request, queryset):
        count = queryset.mark_resolved(note=f"resolved by {request.user} at {timezone.now():%Y-%m-%d %H:%M}")
        messages.success(request, f"Marked {count} delivery(ies) resolved.")


@admin.register(WebhookRejection)
class WebhookRejectionAdmin(admin.ModelAdmin):
    list_display = ("rejected_at", "app", "reason", "client_address")
    list_filter = ("app",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ExtraForwardTarget)
class ExtraForwardTargetAdmin(admin.ModelAdmin):
    list_display = ("app", "url", "enabled")


@admin.register(EventEndpoint)
class EventEndpointAdmin(admin.ModelAdmin):
    """Where the broker sends its events. The signing secret is made here and shown once."""

    list_display = ("url", "description", "enabled", "created_at")
    fields = ("url", "description", "enabled", "signing_secret", "created_at")
    readonly_fields = ("signing_secret", "created_at")
    actions = ("rotate_secret",)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.secret = EventEndpoint.new_secret()
            messages.warning(request, f"Signing secret for {obj.url} (shown once, copy it now): {obj.secret}")
        super().save_model(request, obj, form, change)

    @admin.display(description="signing secret")
    def signing_secret(self, obj):
        return "set" if obj.pk and obj.secret else "not set"

    @admin.action(
        description="Make a new signing secret (shown once; the old one stops at once)", permissions=["change"]
    )
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            endpoint.secret = EventEndpoint.new_secret()
            endpoint.save(update_fields=["secret"])
            messages.warning(request, f"New signing secret for {endpoint.url} (shown once): {endpoint.secret}")


@admin.register(EventDelivery)
class EventDeliveryAdmin(admin.ModelAdmin):
    """Every event sent to the customer's backend, its attempts and the last answer."""

    list_display = ("created_at", "event_type", "endpoint", "status", "attempts", "last_status_code", "delivered_at")
    list_filter = ("status", "event__type", "endpoint")
    list_select_related = ("event", "endpoint")
    fields = (
        "event",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "event_data",
    )
    readonly_fields = fields
    actions = ("replay",)

    def has_add_permission(self, request):
        return False

    @admin.display(description="type")
    def event_type(self, obj):
        return obj.event.type

    @admin.display(description="data")
    def event_data(self, obj):
        return obj.event.data

    @admin.action(description="Send again", permissions=["change"])
    def replay(self, request, queryset):
        for delivery in queryset:
            event_delivery_replay(delivery=delivery)
        messages.success(request, f"Queued {queryset.count()} delivery(ies) again.")
