from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularRedocView

from .schema import SchemaView

admin.site.site_header = "Zoom token broker"
admin.site.site_title = "Zoom token broker"

urlpatterns = [
    path("", include("accounts.health_urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("accounts.urls")),
    path("", include("zoomauth.urls")),
    path("", include("recallbots.urls")),
    path("", include("webhooks.urls")),
]
