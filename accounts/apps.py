from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from brokerproject.health import register_check

        from . import schema  # noqa: F401 - registers the API token scheme with drf-spectacular
        from .models import EncryptionCanary, beat_heartbeat_check

        register_check("encryption", EncryptionCanary.verify_key)
        register_check("beat", beat_heartbeat_check)
