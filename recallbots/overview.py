"""recallbots' panel on the admin overview: the bots of the last 24 hours by status."""

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from brokerproject.overview import Figure, Panel, changelist, since

from .models import Bot

WORRYING = {Bot.Status.FATAL: "bad", Bot.Status.LAUNCH_FAILED: "bad", Bot.Status.QUEUED: "warn"}


def bots_panel(request) -> Panel | None:
    if not request.user.has_perm("recallbots.view_bot"):
        return None
    day = since(24)
    rows = (
        Bot.objects.filter(created_at__gte=timezone.now() - timedelta(hours=24))
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by("-n", "status")
    )
    figures = [
        Figure(status, n, changelist("recallbots.bot", status=status, created_at__gte=day), WORRYING.get(status, ""))
        for status, n in rows
    ]
    return Panel(title="Bots launched in the last 24 hours", order=50, figures=figures or [Figure("bots", 0)])
