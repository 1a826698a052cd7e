from django.apps import AppConfig


class RecallBotsConfig(AppConfig):
    name = "recallbots"
    verbose_name = "Recall bots"

    def ready(self):
        # zoomauth and webhooks do not import recallbots: Recall plugs in as a token source, a
        # forward target for Zoom's events, and listens to the connection signals.
        from django.db.models.signals import post_delete, post_save

        from webhooks.services import intake_apps, register_forward_targets
        from zoomauth import token_sources
        from zoomauth.models import ZoomConnection

        from . import credentials, receivers
        from .models import RecallOAuthApp
        from .recall_apps import recall_forward_targets

        register_forward_targets(recall_forward_targets)
        from brokerproject.overview import register_panel

        from . import overview

        register_panel(overview.bots_panel, order=50)
        post_save.connect(intake_apps.clear, sender=RecallOAuthApp, dispatch_uid="intake-apps-save-recall")
        post_delete.connect(intake_apps.clear, sender=RecallOAuthApp, dispatch_uid="intake-apps-delete-recall")

        from zoomauth import presence

        presence.user_left.connect(receivers.on_user_left, dispatch_uid="bots-user-left")
        presence.user_joined.connect(receivers.on_user_joined, dispatch_uid="bots-user-joined")
        presence.meeting_ended.connect(receivers.on_meeting_ended, dispatch_uid="bots-meeting-ended")

        token_sources.register(ZoomConnection.TokenSource.RECALL, credentials.RecallManagedTokens())
        token_sources.connection_connected.connect(receivers.on_connection_connected, dispatch_uid="recall-connected")
        token_sources.connection_disconnected.connect(
            receivers.on_connection_disconnected, dispatch_uid="recall-disconnected"
        )
        token_sources.callback_secret_rotated.connect(
            receivers.on_callback_secret_rotated, dispatch_uid="recall-secret-rotated"
        )
