"""The admin's home page: one screen that shows what is wrong before anyone asks.

This module knows no app. Each app registers, from its AppConfig.ready(), panels of figures read
from its own tables (`register_panel`); a panel function gets the request and returns None when
the person may not see it (no view permission on its model). Every figure links to the admin list
behind it. The figures are aggregates computed by the database (counts, per-hour counts, latency
histograms), never a loop over rows in Python, so the page stays fast with 100 000 connections and
a million callback rows.
"""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from . import health


@dataclass(frozen=True)
class Figure:
    label: str
    value: str | int
    url: str = ""
    tone: str = ""  # "bad", "warn", "ok" or ""
    detail: str = ""


@dataclass
class Panel:
    title: str
    figures: list[Figure] = field(default_factory=list)
    table_head: list[str] = field(default_factory=list)
    table_rows: list[list] = field(default_factory=list)
    note: str = ""
    order: int = 50


PanelFunction = Callable[[object], Panel | Iterable[Panel] | None]
_panels: list[tuple[int, PanelFunction]] = []


def register_panel(panel: PanelFunction, *, order: int = 50) -> None:
    if all(existing is not panel for _, existing in _panels):
        _panels.append((order, panel))
        _panels.sort(key=lambda item: item[0])


def panels_for(request) -> list[Panel]:
    found: list[Panel] = []
    for _, panel in _panels:
        made = panel(request)
        if made is None:
            continue
        found.extend([made] if isinstance(made, Panel) else made)
    return found


def changelist(model_label: str, **filters) -> str:
    """The admin list of `app.model`, filtered as the figure says."""
    app_label, model = model_label.lower().split(".")
    url = reverse(f"admin:{app_label}_{model}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def since(hours: int = 24) -> str:
    """A `created_at__gte` value for an admin list's URL: `hours` ago, with its UTC offset."""
    return (timezone.now() - timedelta(hours=hours)).isoformat(timespec="seconds")


def sparkline(values: list[int], *, width: int = 144, height: int = 28, label: str = "") -> SafeString:
    """An inline SVG bar chart (server-side, no JavaScript): one bar a value, oldest first."""
    if not values:
        return SafeString("")
    top = max(values) or 1
    step = width / len(values)
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
        (
            (
                f"{i * step:.1f}",
                f"{height - max(1.0, value / top * height):.1f}",
                f"{max(1.0, step - 1):.1f}",
                f"{max(1.0, value / top * height):.1f}",
                value,
            )
            for i, value in enumerate(values)
        ),
    )
    return format_html(
        '<svg class="spark" role="img" aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}">{}</svg>',
        label,
        width,
        height,
        width,
        height,
        bars,
    )


def percentile_from_buckets(buckets: dict[int, int], fraction: float, *, bucket_ms: int) -> int | None:
    """The `fraction` quantile (0.95: p95) from counts per latency bucket of `bucket_ms`: the upper
    edge of the bucket it falls in (a bound, never an underestimate by more than one bucket)."""
    total = sum(buckets.values())
    if not total:
        return None
    rank = math.ceil(total * fraction)
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= rank:
            return (bucket + 1) * bucket_ms
    return (max(buckets) + 1) * bucket_ms


def _dependencies(request) -> Panel | None:
    if not request.user.is_staff:
        return None
    panel = Panel(title="Dependencies", order=0)
    for name, result in health.readiness().items():
        panel.figures.append(
            Figure(
                label=name,
                value="ok" if result["ok"] else "down",
                tone="ok" if result["ok"] else "bad",
                detail=result["detail"],
                url=reverse("readyz"),
            )
        )
    return panel


register_panel(_dependencies, order=0)


class BrokerAdminSite(admin.AdminSite):
    """Django's admin with the overview as its home (the app list follows it)."""

    site_header = "Zoom token broker"
    site_title = "Zoom token broker"
    index_title = "Overview"
    index_template = "admin/broker_index.html"

    def index(self, request, extra_context=None):
        context = {"overview_panels": panels_for(request), **(extra_context or {})}
        return super().index(request, context)
