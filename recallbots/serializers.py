from rest_framework import serializers

from zoomauth.models import ZoomConnection

from .meeting_urls import validate_zoom_meeting_url
from .models import Bot, BotStatusChange


class BotStatusChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = BotStatusChange
        fields = ("code", "sub_code", "occurred_at")


class BotSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    connection = serializers.UUIDField(source="connection.public_id", read_only=True, allow_null=True)
    status_changes = BotStatusChangeSerializer(many=True, read_only=True)
    fatal_hint = serializers.CharField(read_only=True)

    class Meta:
        model = Bot
        fields = (
            "id",
            "recall_id",
            "connection",
            "meeting_id",
            "token_kinds",
            "bot_name",
            "join_at",
            "metadata",
            "status",
            "sub_code",
            "fatal_hint",
            "status_updated_at",
            "status_changes",
            "created_at",
        )


class LaunchBotSerializer(serializers.Serializer):
    meeting_url = serializers.CharField(max_length=2000, validators=[validate_zoom_meeting_url])
    connection = serializers.UUIDField(required=False, allow_null=True, help_text="The Zoom connection (id) to use.")
    token_kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=Bot.TokenKind.values), allow_empty=True, default=list
    )
    zak_from_service_account = serializers.BooleanField(default=False)
    bypass_waiting_room = serializers.BooleanField(default=False)
    bot_name = serializers.CharField(max_length=100, default="Recall Bot")
    join_at = serializers.DateTimeField(required=False, allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField(max_length=500), required=False, default=dict)

    def validate_connection(self, value):
        if value is None:
            return None
        connection = ZoomConnection.objects.filter(public_id=value, user=self.context["request"].user).first()
        if connection is None:
            raise serializers.ValidationError("No Zoom connection with this id belongs to you.")
        return connection
