"""The JSON API for the customer's backend: connect links for its own users, and its connections.

Authentication is the project's API token (or a staff session in the browsable docs). Staff
tokens see every connection; a non-staff user's token sees that user's own.
"""

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView, RetrieveDestroyAPIView
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .models import ConnectSession, ZoomConnection
from .serializers import ConnectionSerializer, ConnectSessionRequestSerializer, ConnectSessionSerializer
from .services import connection_disconnect, connection_rotate_callback_secret


class _BackendApi:
    # The API token class lives in accounts; DRF's settings name it, so zoomauth imports no app.
    authentication_classes = api_settings.DEFAULT_AUTHENTICATION_CLASSES
    permission_classes = [IsAuthenticated]


def visible_connections(user):
    connections = ZoomConnection.objects.select_related("app", "user").order_by("-created_at")
    return connections if user.is_staff else connections.filter(user=user)


class ConnectSessionCreateView(_BackendApi, APIView):
    permission_classes = [IsAdminUser]  # it makes users: staff tokens only

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
class ConnectionListView(_BackendApi, ListAPIView):
    """Connections with their callback URLs (OBF and join-token URLs take `&meeting_id=` appended)."""

    serializer_class = ConnectionSerializer

    def get_queryset(self):
        connections = visible_connections(self.request.user)
        if external_user_id := self.request.query_params.get("external_user_id"):
            connections = connections.filter(user__external_user_id=external_user_id[:255])
        if wanted := self.request.query_params.get("status"):
            connections = connections.filter(status=wanted[:20])
        return connections


class ConnectionDetailView(_BackendApi, RetrieveDestroyAPIView):
    """One connection; DELETE revokes it at Zoom, wipes its tokens and deletes its Recall credential."""

    serializer_class = ConnectionSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "connection_id"

    def get_queryset(self):
        return visible_connections(self.request.user)

    def perform_destroy(self, instance):
        if instance.status != ZoomConnection.Status.REVOKED:
            connection_disconnect(connection=instance, reason="Disconnected through the API.")


class ConnectionRotateSecretView(_BackendApi, APIView):
    @extend_schema(request=None, responses={200: ConnectionSerializer})
    def post(self, request, connection_id):
        connection = get_object_or_404(visible_connections(request.user), public_id=connection_id)
        connection_rotate_callback_secret(connection=connection)  # whatever its state: a leak is a leak
        return Response(ConnectionSerializer(connection).data)
