from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks and events"

    def ready(self):
        from zoomauth import token_sources

        from . import receivers

        token_sources.connection_connected.connect(receivers.on_connected, dispatch_uid="events-connected")
        token_sources.connection_needs_reconnect.connect(
            receivers.on_needs_reconnect, dispatch_uid="events-needs-reconnect"
        )
        token_sources.connection_disconnected.connect(receivers.on_disconnected, dispatch_uid="events-revoked")
