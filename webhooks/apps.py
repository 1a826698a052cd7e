from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks and events"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from brokerproject.health import register_gauges
        from zoomauth import token_sources
        from zoomauth.models import ZoomApp

        from . import receivers
        from .models import ExtraForwardTarget
        from .services import delivery_gauges, intake_apps

        register_gauges(delivery_gauges)
        from brokerproject.overview import register_panel

        from . import overview

        register_panel(overview.forwarding_panel, order=30)
        register_panel(overview.customer_events_panel, order=40)

        token_sources.connection_connected.connect(receivers.on_connected, dispatch_uid="events-connected")
        token_sources.connection_needs_reconnect.connect(
            receivers.on_needs_reconnect, dispatch_uid="events-needs-reconnect"
        )
        token_sources.connection_disconnected.connect(receivers.on_disconnected, dispatch_uid="events-revoked")
        token_sources.connection_claim_refused.connect(receivers.on_claim_refused, dispatch_uid="events-claim-refused")
        # The intake's per-process cache of apps and targets forgets any change made here at once
        # (apps that register forward targets connect their own models the same way).
        for model in (ZoomApp, ExtraForwardTarget):
            post_save.connect(intake_apps.clear, sender=model, dispatch_uid=f"intake-apps-save-{model.__name__}")
            post_delete.connect(intake_apps.clear, sender=model, dispatch_uid=f"intake-apps-delete-{model.__name__}")
