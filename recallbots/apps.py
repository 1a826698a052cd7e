from django.apps import AppConfig


class RecallBotsConfig(AppConfig):
    name = "recallbots"
    verbose_name = "Recall bots"
