"""Reads of zoomauth's rows that several places need: the views, the admin and its overview, the
callbacks, the other apps."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from .models import ZoomApp, ZoomConnection, ZoomMeeting


def connection_for_zoom_user(*, app: ZoomApp, zoom_user_id: str) -> ZoomConnection | None:
    return ZoomConnection.objects.filter(app=app, zoom_user_id=zoom_user_id).first() if zoom_user_id else None


def connection_for_meeting(*, meeting_id: str) -> ZoomConnection | None:
    """The host's connection for a meeting: meeting.created mapping first, then the PMI."""
    mapping = ZoomMeeting.objects.select_related("host_connection").filter(meeting_id=meeting_id).first()
    if mapping is not None:
        return mapping.host_connection
    return ZoomConnection.objects.filter(pmi=meeting_id).exclude(status=ZoomConnection.Status.REVOKED).first()


def connection_counts_by_status() -> dict[str, int]:
    return dict(ZoomConnection.objects.values_list("status").annotate(n=Count("pk")))


def connection_health_counts() -> dict[str, int]:
    """The overview's figures in one aggregate: refreshed in 24 h, failing, expiring without refresh
    (the same sets as failing() and expiring_without_refresh() below)."""
    now = timezone.now()
    return ZoomConnection.objects.aggregate(
        refreshed=Count("pk", filter=Q(last_refreshed_at__gte=now - timedelta(hours=24))),
        failing=Count("pk", filter=Q(status=ZoomConnection.Status.ACTIVE, consecutive_failures__gt=0)),
        expiring=Count(
            "pk",
            filter=Q(
                status=ZoomConnection.Status.ACTIVE,
                token_source=ZoomConnection.TokenSource.LOCAL,
                access_token_expires_at__lt=now + settings.ACCESS_TOKEN_MIN_VALIDITY,
            ),
        ),
    )


def connections_needing_reconnect(*, limit: int) -> list[ZoomConnection]:
    """Who must connect again, the newest refusal first."""
    return list(
        ZoomConnection.objects.filter(status=ZoomConnection.Status.NEEDS_RECONNECT)
        .select_related("user")
        .order_by("-needs_reconnect_since", "-updated_at")[:limit]
    )


def connection_gauges():
    """/metrics, read at each scrape: connections by status (whichever process changed them)."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily("broker_connections", "Zoom connections by status.", labels=["status"])
    counts = connection_counts_by_status()
    for status in ZoomConnection.Status.values:
        family.add_metric([status], counts.get(status, 0))
    yield family


# The overview's filters (the admin's health filter and the overview's figures).
def expiring_without_refresh(queryset, *, now=None):
    """Active, locally held tokens with less than ACCESS_TOKEN_MIN_VALIDITY left: beat should have
    refreshed them at ZOOM_REFRESH_WINDOW. A few for a moment is a refresh in flight; many, or
    for long, is beat or Zoom failing."""
    now = now or timezone.now()
    return queryset.filter(
        status=ZoomConnection.Status.ACTIVE,
        token_source=ZoomConnection.TokenSource.LOCAL,
        access_token_expires_at__lt=now + settings.ACCESS_TOKEN_MIN_VALIDITY,
    )


def failing(queryset):
    return queryset.filter(status=ZoomConnection.Status.ACTIVE, consecutive_failures__gt=0)
