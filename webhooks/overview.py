"""webhooks' panels on the admin overview: Zoom's events on their way to Recall, and events on
their way to the customer's backend."""

from datetime import timedelta

from django.db.models import Count, Min, Q
from django.utils import timezone
from django.utils.timesince import timesince

from brokerproject.overview import Figure, Panel, changelist, since

from .models import EventDelivery, ZoomWebhookDelivery


def forwarding_panel(request) -> Panel | None:
    if not request.user.has_perm("webhooks.view_zoomwebhookdelivery"):
        return None
    label = "webhooks.zoomwebhookdelivery"
    pending = ZoomWebhookDelivery.objects.filter(status=ZoomWebhookDelivery.Status.PENDING).aggregate(
        n=Count("pk"), oldest=Min("received_at"), retrying=Count("pk", filter=Q(attempts__gt=0))
    )
    failed = ZoomWebhookDelivery.objects.filter(
        status=ZoomWebhookDelivery.Status.FAILED, received_at__gte=timezone.now() - timedelta(hours=24)
    ).count()
    oldest = pending["oldest"]
    age = (timezone.now() - oldest).total_seconds() if oldest else 0
    waiting = changelist(label, status="pending")
    return Panel(
        title="Zoom events to Recall",
        order=30,
        figures=[
            Figure("waiting to be forwarded", pending["n"], waiting, "warn" if age > 60 else ""),
            Figure(
                "oldest undelivered",
                f"{timesince(oldest)}" if oldest else "none",
                waiting,
                "bad" if age > 300 else ("warn" if age > 60 else ""),
            ),
            Figure("being retried", pending["retrying"], waiting, "warn" if pending["retrying"] else ""),
            Figure(
                "given up in 24 h",
                failed,
                changelist(label, status="failed", received_at__gte=since(24)),
                "bad" if failed else "",
            ),
        ],
    )


def customer_events_panel(request) -> Panel | None:
    if not request.user.has_perm("webhooks.view_eventdelivery"):
        return None
    label = "webhooks.eventdelivery"
    counts = EventDelivery.objects.aggregate(
        pending=Count("pk", filter=Q(status=EventDelivery.Status.PENDING)),
        failing=Count("pk", filter=Q(status=EventDelivery.Status.PENDING, attempts__gt=0)),
        failed=Count("pk", filter=Q(status=EventDelivery.Status.FAILED)),
    )
    return Panel(
        title="Events to your backend",
        order=40,
        figures=[
            Figure("pending", counts["pending"], changelist(label, status="pending")),
            Figure(
                "failing (retrying)",
                counts["failing"],
                changelist(label, status="pending"),
                "warn" if counts["failing"] else "",
            ),
            Figure(
                "failed for good",
                counts["failed"],
                changelist(label, status="failed"),
                "bad" if counts["failed"] else "",
            ),
        ],
    )
