"""zoomauth's panels on the admin overview: connections (and who must reconnect), refreshes, and
the token callbacks of the last 24 hours. Aggregates only: the database counts."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Sum
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from brokerproject.overview import Figure, Panel, changelist, percentile_from_buckets, since, sparkline

from .models import CallbackHourStat, CallbackLog, ZoomConnection
from .selectors import connection_counts_by_status, connection_health_counts, connections_needing_reconnect

NEEDS_RECONNECT_LISTED = 10


def connections_panel(request) -> Panel | None:
    if not request.user.has_perm("zoomauth.view_zoomconnection"):
        return None
    by_status = connection_counts_by_status()
    needs = by_status.get(ZoomConnection.Status.NEEDS_RECONNECT, 0)
    panel = Panel(title="Zoom connections", order=10)
    panel.figures = _connection_figures(by_status, connection_health_counts())
    if needs:
        panel.table_head = ["user", "Zoom account", "since", "reason", ""]
        may_link = request.user.has_perm("zoomauth.add_connectsession")
        panel.table_rows = [
            _needs_reconnect_row(request, connection, may_link=may_link)
            for connection in connections_needing_reconnect(limit=NEEDS_RECONNECT_LISTED)
        ]
        if needs > NEEDS_RECONNECT_LISTED:
            panel.note = f"The {NEEDS_RECONNECT_LISTED} most recent of {needs}."
    return panel


def _connection_figures(by_status: dict[str, int], counts: dict[str, int]) -> list[Figure]:
    label = "zoomauth.zoomconnection"
    needs = by_status.get(ZoomConnection.Status.NEEDS_RECONNECT, 0)
    return [
        Figure("active", by_status.get(ZoomConnection.Status.ACTIVE, 0), changelist(label, status="active"), "ok"),
        Figure("need reconnect", needs, changelist(label, status="needs_reconnect"), "bad" if needs else ""),
        Figure("revoked", by_status.get(ZoomConnection.Status.REVOKED, 0), changelist(label, status="revoked")),
        Figure(
            "failing refreshes",
            counts["failing"],
            changelist(label, health="failing"),
            "warn" if counts["failing"] else "",
            "active connections whose last refresh failed",
        ),
        Figure(
            "expiring without refresh",
            counts["expiring"],
            changelist(label, health="expiring"),
            "bad" if counts["expiring"] else "",
            f"less than {int(settings.ACCESS_TOKEN_MIN_VALIDITY.total_seconds())} s left",
        ),
        Figure("refreshed in 24 h", counts["refreshed"]),
    ]


def _needs_reconnect_row(request, connection: ZoomConnection, *, may_link: bool) -> list:
    when = connection.needs_reconnect_since or connection.updated_at
    button = (
        format_html(
            '<form method="post" action="{}"><input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<button type="submit">Make a connect link</button></form>',
            reverse("admin:zoomauth_zoomconnection_connect_link", args=[connection.pk]),
            get_token(request),
        )
        if may_link
        else ""
    )
    return [
        format_html(
            '<a href="{}">{}</a>',
            reverse("admin:zoomauth_zoomconnection_change", args=[connection.pk]),
            connection.user.external_user_id or connection.user.username,
        ),
        connection.email or connection.zoom_user_id,
        f"{timesince(when)} ago",
        connection.last_error,
        button,
    ]


def callbacks_panel(request) -> Panel | None:
    if not request.user.has_perm("zoomauth.view_callbacklog"):
        return None
    now = timezone.now()
    start = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    # Counted by the audit writer per hour, kind and latency bucket: a few hundred rows a day.
    recent = CallbackHourStat.objects.filter(hour__gte=start)
    hourly = recent.values("kind", "hour").annotate(n=Sum("answered"), ok=Sum("answered_200"))
    buckets = recent.values("kind", "latency_bucket").annotate(n=Sum("answered"))
    hours = [start + timedelta(hours=i) for i in range(24)]
    per_kind: dict[str, dict] = {
        kind: {"hours": dict.fromkeys(hours, 0), "n": 0, "ok": 0, "buckets": {}} for kind in CallbackLog.Kind.values
    }
    for row in hourly:
        tally = per_kind.get(row["kind"])
        if tally is None:
            continue
        if row["hour"] in tally["hours"]:
            tally["hours"][row["hour"]] += row["n"]
        tally["n"] += row["n"]
        tally["ok"] += row["ok"]
    for row in buckets:
        tally = per_kind.get(row["kind"])
        if tally is not None:
            tally["buckets"][row["latency_bucket"]] = row["n"]
    panel = Panel(title="Token callbacks, last 24 hours", order=20)
    panel.table_head = ["kind", "callbacks", "answered 200", "p95 latency", "per hour"]
    label = "zoomauth.callbacklog"
    for kind, figures in per_kind.items():
        n, ok = figures["n"], figures["ok"]
        rate = f"{ok / n:.1%}" if n else "–"
        p95 = percentile_from_buckets(figures["buckets"], 0.95, bucket_ms=CallbackHourStat.BUCKET_MS)
        panel.table_rows.append(
            [
                kind,
                format_html('<a href="{}">{}</a>', changelist(label, kind=kind, created_at__gte=since(24)), n),
                format_html(
                    '<a class="{}" href="{}">{}</a>',
                    "bad" if n and ok / n < 0.95 else "",
                    changelist(label, kind=kind, created_at__gte=since(24), answered="refused"),
                    rate,
                ),
                f"≤ {p95} ms" if p95 is not None else "–",
                sparkline(list(figures["hours"].values()), label=f"{kind} callbacks per hour"),
            ]
        )
    return panel
