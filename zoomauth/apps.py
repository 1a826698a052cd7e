from django.apps import AppConfig


class ZoomAuthConfig(AppConfig):
    name = "zoomauth"
    verbose_name = "Zoom connections"
