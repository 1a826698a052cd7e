"""Liveness and readiness at the top of the site, outside the accounts namespace (load balancers
and orchestrators call these fixed paths)."""

from django.urls import path

from . import health, metrics

urlpatterns = [
    path("metrics", metrics.metrics_view, name="metrics"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
