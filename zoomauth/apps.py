from django.apps import AppConfig


class ZoomAuthConfig(AppConfig):
    name = "zoomauth"
    verbose_name = "Zoom connections"

    def ready(self):
        from brokerproject.health import register_gauges
        from brokerproject.overview import register_panel

        from . import overview
        from .selectors import connection_gauges

        register_gauges(connection_gauges)
        register_panel(overview.connections_panel, order=10)
        register_panel(overview.callbacks_panel, order=20)
