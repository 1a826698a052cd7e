from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks and events"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from zoomauth import token_sources

        from . import receivers
        from .services import intake_apps

        token_sources.connection_connected.connect(receivers.on_connected, dispatch_uid="events-connected")
        token_sources.connection_needs_reconnect.connect(
            receivers.on_needs_reconnect, dispatch_uid="events-needs-reconnect"
        )
        token_sources.connection_disconnected.connect(receivers.on_disconnected, dispatch_uid="events-revoked")
        token_sources.connection_claim_refused.connect(receivers.on_claim_refused, dispatch_uid="events-claim-refused")
        # The intake's per-process cache of apps and targets forgets any change made here at once.
        for model in ("zoomauth.ZoomApp", "recallbots.RecallOAuthApp", "webhooks.ExtraForwardTarget"):
            post_save.connect(intake_apps.clear, sender=model, dispatch_uid=f"intake-apps-save-{model}")
            post_delete.connect(intake_apps.clear, sender=model, dispatch_uid=f"intake-apps-delete-{model}")
