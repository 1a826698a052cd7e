"""The JSON API for the customer's backend: connect links for its own users, and its connections.

Authentication is the project's API token (or a session in the browsable docs). Powers over
other users' connections are Django permissions, never `is_staff` alone:
- zoomauth.view_zoomconnection: list and read every connection, callback URLs masked;
- zoomauth.reveal_callback_urls: those URLs in full, each reveal recorded in the connection's
  history (who and when);
- zoomauth.delete_zoomconnection / change_zoomconnection: disconnect / rotate the secret of any;
- zoomauth.add_connectsession: make connect links (they make users).
Everyone sees, and acts on, their own connections with their URLs in full. A staff account
without the view permission is refused (403) rather than shown a partial list.
"""

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView, RetrieveUpdateDestroyAPIView
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import ConnectSession, ZoomConnection
from .serializers import (
    ConnectionSerializer,
    ConnectionSettingsSerializer,
    ConnectSessionRequestSerializer,
    ConnectSessionSerializer,
)
from .services.connect import connection_disconnect
from .services.grants import connection_rotate_callback_secret, connection_set_sharing, record_reveal


class ConnectionsAccess(BasePermission):
    message = "Staff access to Zoom connections needs the 'Can view Zoom connection' permission."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated) and (
            not user.is_staff or user.has_perm("zoomauth.view_zoomconnection")
        )


def visible_connections(user):
    connections = ZoomConnection.objects.select_related("app", "user").order_by("-created_at")
    return connections if user.has_perm("zoomauth.view_zoomconnection") else connections.filter(user=user)


def _may(user, connection: ZoomConnection, perm: str) -> bool:
    return connection.user_id == user.pk or user.has_perm(perm)


def serialized(request, connections, *, many: bool = False):
    """Connections as the API shows them: URLs in full for their owner and for holders of the
    reveal permission (recorded), masked for everyone else."""
    items = list(connections) if many else [connections]
    may_reveal = request.user.has_perm("zoomauth.reveal_callback_urls")
    revealed = [c for c in items if c.is_usable and (c.user_id == request.user.pk or may_reveal)]
    record_reveal(
        user=request.user, connections=[c for c in revealed if c.user_id != request.user.pk], where="through the API"
    )
    context = {"revealed": {c.pk for c in revealed}}
    data = ConnectionSerializer(items, many=True, context=context).data
    return data if many else data[0]


class CanMakeConnectLinks(BasePermission):
    message = "Making connect links needs the 'Can add connect session' permission."

    def has_permission(self, request, view):
        return bool(request.user and request.user.has_perm("zoomauth.add_connectsession"))


class ConnectSessionCreateView(APIView):
    permission_classes = [IsAuthenticated, CanMakeConnectLinks]  # it makes users

    @extend_schema(request=ConnectSessionRequestSerializer, responses={201: ConnectSessionSerializer})
    def post(self, request):
        given = ConnectSessionRequestSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        user_model = type(request.user)
        with transaction.atomic():
            user = user_model.for_external_id(data["external_user_id"], email=data.get("email", ""))
            session, raw = ConnectSession.issue(user=user, app=data["app"], return_url=data.get("return_url", ""))
        body = {
            "url": ConnectSession.url_for(raw),
            "expires_at": session.expires_at,
            "external_user_id": user.external_user_id,
        }
        return Response(ConnectSessionSerializer(body).data, status=status.HTTP_201_CREATED)


@extend_schema(
    parameters=[
        OpenApiParameter("external_user_id", str, description="Only this end user's connections."),
        OpenApiParameter(
            "status", str, enum=ZoomConnection.Status.values, description="Only connections in this state."
        ),
    ]
)
class ConnectionListView(ListAPIView):
    """Connections with their callback URLs (OBF and join-token URLs take `&meeting_id=` appended)."""

    serializer_class = ConnectionSerializer
    permission_classes = [IsAuthenticated, ConnectionsAccess]

    def list(self, request, *args, **kwargs):
        return Response(serialized(request, self.get_queryset(), many=True))

    def get_queryset(self):
        connections = visible_connections(self.request.user)
        if external_user_id := self.request.query_params.get("external_user_id"):
            connections = connections.filter(user__external_user_id=external_user_id[:255])
        if wanted := self.request.query_params.get("status"):
            connections = connections.filter(status=wanted[:20])
        return connections


class ConnectionDetailView(RetrieveUpdateDestroyAPIView):
    """One connection. PATCH sets `allow_join_tokens_for_others` and `allow_obf_for_others` (the owner's
    choice); DELETE
    wipes its tokens at once and revokes it at Zoom and at Recall in tasks."""

    serializer_class = ConnectionSerializer
    permission_classes = [IsAuthenticated, ConnectionsAccess]
    lookup_field = "public_id"
    lookup_url_kwarg = "connection_id"
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return visible_connections(self.request.user)

    def retrieve(self, request, *args, **kwargs):
        return Response(serialized(request, self.get_object()))

    @extend_schema(request=ConnectionSettingsSerializer, responses={200: ConnectionSerializer})
    def patch(self, request, *args, **kwargs):
        connection = self.get_object()
        if not _may(request.user, connection, "zoomauth.change_zoomconnection"):
            # Lending one's grant to other users' bots is the owner's choice: set by the owner, or
            # relayed by the customer's backend (users of connect links have no broker sign-in).
            raise PermissionDenied(
                "Only the connection's owner, or an API user with the change permission relaying the owner's "
                "choice, can change this setting."
            )
        given = ConnectionSettingsSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        connection_set_sharing(
            connection=connection, by_user=request.user, changes=dict(given.validated_data), where="through the API"
        )
        return Response(serialized(request, connection))

    def perform_destroy(self, instance):
        if not _may(self.request.user, instance, "zoomauth.delete_zoomconnection"):
            raise PermissionDenied("Disconnecting another user's connection needs the delete permission.")
        if instance.status != ZoomConnection.Status.REVOKED:
            connection_disconnect(connection=instance, reason="Disconnected through the API.")


class ConnectionRotateSecretView(APIView):
    permission_classes = [IsAuthenticated, ConnectionsAccess]

    @extend_schema(request=None, responses={200: ConnectionSerializer})
    def post(self, request, connection_id):
        connection = get_object_or_404(visible_connections(request.user), public_id=connection_id)
        if not _may(request.user, connection, "zoomauth.change_zoomconnection"):
            raise PermissionDenied("Rotating another user's secret needs the change permission.")
        connection_rotate_callback_secret(connection=connection)  # whatever its state: a leak is a leak
        return Response(serialized(request, connection))
