"""recallbots' models, by use case: recall_apps (what the broker registered at Recall), bot (the
Bot model and its states), launch (its launch's claim and transitions), history (its status events
and token fetches). Every model is importable from here, as migrations and callers expect."""

from .bot import Bot, BotQuerySet
from .history import BotHistory, BotStatusChange
from .launch import LAUNCH_LEASE, BotLaunch
from .recall_apps import RecallCredential, RecallOAuthApp

__all__ = [
    "LAUNCH_LEASE",
    "Bot",
    "BotHistory",
    "BotLaunch",
    "BotQuerySet",
    "BotStatusChange",
    "RecallCredential",
    "RecallOAuthApp",
]
