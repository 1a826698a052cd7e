from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularRedocView

from . import health
from .schema import SchemaView

admin.site.site_header = "Zoom token broker"
admin.site.site_title = "Zoom token broker"

urlpatterns = [
    # Liveness, readiness and metrics at fixed top-level paths (load balancers and Prometheus call
    # them); the apps register their checks and gauges into brokerproject.health.
    path("metrics", health.metrics_view, name="metrics"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("accounts.urls")),
    path("", include("zoomauth.urls")),
    path("", include("recallbots.urls")),
    path("", include("webhooks.urls")),
]
