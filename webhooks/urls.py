from django.urls import path

from . import views

app_name = "webhooks"

urlpatterns = [
    path("webhooks/zoom/<uuid:app_public_id>/", views.zoom_webhook, name="zoom"),
]
