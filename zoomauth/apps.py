from django.apps import AppConfig


class ZoomAuthConfig(AppConfig):
    name = "zoomauth"
    verbose_name = "Zoom connections"

    def ready(self):
        from brokerproject.health import register_gauges

        from .services import connection_gauges

        register_gauges(connection_gauges)
