"""zoomauth's connection signals, as recallbots answers them (connected in apps.py)."""

from django.db import transaction

from brokerproject.celery import enqueue_safely

from .credentials import credential_sync_after_connect


def on_connection_connected(sender, *, connection_id: int, **kwargs) -> None:
    credential_sync_after_connect(connection_id=connection_id)


def on_connection_disconnected(sender, *, connection_id: int, **kwargs) -> None:
    # Recall is called from a task, after the commit: a disconnect answers without waiting on it.
    transaction.on_commit(lambda: enqueue_safely("recallbots.tasks.credential_delete_for_connection", connection_id))


def on_callback_secret_rotated(sender, *, connection_id: int, **kwargs) -> None:
    # Recall's customer-managed credential holds the old access-token URL: register it anew.
    credential_sync_after_connect(connection_id=connection_id)
