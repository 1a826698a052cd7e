from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from zoomauth.models import ZoomConnection, ZoomConnectionQuerySet

from .models import Bot

# The reason every door gives for a connection outside the launch rule (the API's 400 included).
NOT_YOUR_CONNECTION = "No Zoom connection with this id belongs to you."


def connections_launchable_by(*, launcher) -> ZoomConnectionQuerySet:
    """The launch rule of every door (the API, the launch page, the admin): the launcher's own
    connections; every connection with `launch_on_any_connection`. A join token from another
    host's connection also needs that host's opt-in (launch.bot_zoom_config)."""
    connections = ZoomConnection.objects.select_related("app")
    if launcher.has_perm("recallbots.launch_on_any_connection"):
        return connections
    return connections.filter(user=launcher)


def bots_queued_due(*, grace_seconds: int = 120) -> list[int]:
    """Queued launches whose next try is overdue by `grace_seconds`: their message was lost (the
    queue was away when they were queued or rescheduled). bot_create_at_recall claims each one, so
    a message that was only late does no harm."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    overdue = Q(launch_next_attempt_at__lt=cutoff) | Q(launch_next_attempt_at__isnull=True, created_at__lt=cutoff)
    return list(Bot.objects.filter(overdue, status=Bot.Status.QUEUED).values_list("pk", flat=True)[:200])
