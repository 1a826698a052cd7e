"""zoomauth's connection signals turned into events for the customer's backend."""

from zoomauth.models import ZoomConnection
from zoomauth.serializers import ConnectionSerializer

from .events import event_emit
from .models import Event


def connection_event_data(connection: ZoomConnection) -> dict:
    """The connection as the API shows it, without callback_urls (they carry its secret)."""
    data = dict(ConnectionSerializer(connection).data)
    data.pop("callback_urls", None)
    return data


def _emit(type: str, connection_id: int, **extra) -> None:
    connection = ZoomConnection.objects.select_related("app", "user").filter(pk=connection_id).first()
    if connection is not None:
        data = {"connection": connection_event_data(connection), **extra}
        event_emit(type=type, data=data, connection_id=connection_id)


def on_connected(sender, *, connection_id: int, **kwargs) -> None:
    _emit(Event.Type.CONNECTION_CONNECTED, connection_id)


def on_needs_reconnect(sender, *, connection_id: int, **kwargs) -> None:
    _emit(Event.Type.CONNECTION_NEEDS_RECONNECT, connection_id)


def on_disconnected(sender, *, connection_id: int, **kwargs) -> None:
    _emit(Event.Type.CONNECTION_REVOKED, connection_id)


def on_claim_refused(sender, *, connection_id: int, claimed_by_user_id: int, **kwargs) -> None:
    """Someone else finished a Zoom consent for this connection: its owner hears of it."""
    from django.contrib.auth import get_user_model

    claimant = get_user_model().objects.filter(pk=claimed_by_user_id).first()
    _emit(
        Event.Type.CONNECTION_CLAIM_REFUSED,
        connection_id,
        claimed_by={"external_user_id": getattr(claimant, "external_user_id", None)},
    )
