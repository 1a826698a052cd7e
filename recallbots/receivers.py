"""The receivers of zoomauth's signals (connected in apps.py): the connection signals (token_sources)
and the meeting presence ones (presence). Each decides nothing: it hands over to its use case."""

from datetime import datetime

from django.db import transaction

from brokerproject.celery import enqueue_safely

from . import handoff, waiting
from .credentials import credential_sync_after_connect


def on_connection_connected(sender, *, connection_id: int, **kwargs) -> None:
    credential_sync_after_connect(connection_id=connection_id)


def on_connection_disconnected(sender, *, connection_id: int, **kwargs) -> None:
    # Recall is called from a task, after the commit: a disconnect answers without waiting on it.
    transaction.on_commit(lambda: enqueue_safely("recallbots.tasks.credential_delete_for_connection", connection_id))


def on_callback_secret_rotated(sender, *, connection_id: int, **kwargs) -> None:
    # Recall's customer-managed credential holds the old access-token URL: register it anew.
    credential_sync_after_connect(connection_id=connection_id)


def on_user_joined(sender, *, app_id: int, meeting_id: str, connection_id: int, **kwargs) -> None:
    for bot_id in waiting.bots_waiting_for(app_id=app_id, meeting_id=meeting_id, connection_id=connection_id):
        enqueue_safely("recallbots.tasks.bot_release_waiting", bot_id)


def on_meeting_ended(sender, *, app_id: int, meeting_id: str, at: datetime, **kwargs) -> None:
    waiting.bots_meeting_ended(app_id=app_id, meeting_id=meeting_id, at=at)


def on_user_left(sender, *, app_id: int, meeting_id: str, connection_id: int, **kwargs) -> None:
    for bot_id in handoff.bots_carrying_obf_of(app_id=app_id, meeting_id=meeting_id, connection_id=connection_id):
        enqueue_safely("recallbots.tasks.bot_hand_off", bot_id)
