from django.apps import AppConfig


class RecallBotsConfig(AppConfig):
    name = "recallbots"
    verbose_name = "Recall bots"

    def ready(self):
        # zoomauth does not import recallbots: Recall plugs in as a token source and listens.
        from zoomauth import token_sources
        from zoomauth.models import ZoomConnection

        from . import services

        token_sources.register(ZoomConnection.TokenSource.RECALL, services.RecallManagedTokens())
        token_sources.connection_connected.connect(services.on_connection_connected, dispatch_uid="recall-connected")
        token_sources.connection_disconnected.connect(
            services.on_connection_disconnected, dispatch_uid="recall-disconnected"
        )
        token_sources.callback_secret_rotated.connect(
            services.on_callback_secret_rotated, dispatch_uid="recall-secret-rotated"
        )
