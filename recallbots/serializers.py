from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from zoomauth.models import CallbackLog, ZoomConnection

from .launch import validate_join_at
from .meeting_urls import validate_zoom_meeting_url
from .models import Bot, BotStatusChange
from .selectors import NOT_YOUR_CONNECTION, connections_launchable_by


class BotStatusChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = BotStatusChange
        fields = ("code", "sub_code", "occurred_at")


class TokenFetchSerializer(serializers.ModelSerializer):
    """One token GET Recall made for a bot: what, when, the answer, and why not (never the token)."""

    at = serializers.DateTimeField(source="created_at")
    status = serializers.IntegerField(source="status_code")
    reason = serializers.SerializerMethodField()
    connection = serializers.SerializerMethodField(help_text="Whose token was minted (the connection's id).")

    class Meta:
        model = CallbackLog
        fields = ("kind", "at", "status", "latency_ms", "zoom_calls", "meeting_id", "reason", "connection")

    def get_connection(self, obj) -> str | None:
        return str(obj.connection.public_id) if obj.connection_id else None

    def get_reason(self, obj) -> str:
        return "" if obj.status_code == 200 else obj.outcome


class BotSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    connection = serializers.UUIDField(source="connection.public_id", read_only=True, allow_null=True)
    status_changes = BotStatusChangeSerializer(many=True, read_only=True)
    # Any code Recall sends, as it is: Bot.Status names the known ones, not all of them.
    status = serializers.CharField(read_only=True, max_length=50)
    fatal_hint = serializers.CharField(read_only=True)
    token_fetches = serializers.SerializerMethodField()
    obf_candidates = serializers.SerializerMethodField()
    duplicate_of = serializers.UUIDField(
        source="duplicate_of.public_id",
        read_only=True,
        allow_null=True,
        help_text="A second Recall bot for one launch: the launch (bot id) it duplicates.",
    )
    duplicates = serializers.SerializerMethodField(
        help_text="Other Recall bots created for this launch (an ambiguous create that Recall did twice)."
    )
    previous_bot = serializers.UUIDField(
        source="previous_bot.public_id", read_only=True, allow_null=True, help_text="The bot this one took over from."
    )
    next_bot = serializers.SerializerMethodField(help_text="The successor that took over from this bot (hand-off).")

    class Meta:
        model = Bot
        fields = (
            "id",
            "recall_id",
            "duplicate_of",
            "duplicates",
            "launch_ambiguous_at",
            *Bot.DESCRIBED_BY,
            "status_updated_at",
            "status_changes",
            "token_fetches",
            "start",
            "presence",
            "wait_until",
            "obf_candidates",
            "previous_bot",
            "next_bot",
            "created_at",
        )

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_next_bot(self, obj) -> str | None:
        successor = Bot.objects.filter(previous_bot=obj).values_list("public_id", flat=True).first()
        return str(successor) if successor else None

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_obf_candidates(self, obj) -> list[str]:
        if not obj.obf_candidates:
            return []
        ids = dict(ZoomConnection.objects.filter(pk__in=obj.obf_candidates).values_list("pk", "public_id"))
        return [str(ids[pk]) for pk in obj.obf_candidates if pk in ids]

    @extend_schema_field(
        serializers.ListField(child=serializers.DictField(child=serializers.CharField(allow_null=True)))
    )
    def get_duplicates(self, obj) -> list[dict]:
        return [
            {"id": str(public_id), "recall_id": recall_id, "status": status}
            for public_id, recall_id, status in obj.duplicates.values_list("public_id", "recall_id", "status")
        ]

    @extend_schema_field(TokenFetchSerializer(many=True))
    def get_token_fetches(self, obj) -> list[dict]:
        # With many=True this is a ListSerializer and .data a ReturnList; the stubs read it as one row's ReturnDict.
        return TokenFetchSerializer(obj.token_fetches(), many=True).data  # type: ignore[return-value]


class LaunchBotSerializer(serializers.Serializer):
    meeting_url = serializers.CharField(max_length=2000, validators=[validate_zoom_meeting_url])
    connection = serializers.UUIDField(required=False, allow_null=True, help_text="The Zoom connection (id) to use.")
    external_user_id = serializers.CharField(
        max_length=255,
        required=False,
        help_text="Instead of `connection`: your id for the end user; their active connection is used.",
    )
    token_kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=Bot.TokenKind.values), allow_empty=True, default=list
    )
    zak_from_service_account = serializers.BooleanField(default=False)
    bypass_waiting_room = serializers.BooleanField(default=False)
    bot_name = serializers.CharField(max_length=100, default="Recall Bot")
    join_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        validators=[validate_join_at],
        help_text="When the bot joins (ISO 8601): not in the past, at most BOT_JOIN_AT_MAX_DAYS (30) days ahead.",
    )
    metadata = serializers.DictField(child=serializers.CharField(max_length=500), required=False, default=dict)
    start = serializers.ChoiceField(
        choices=Bot.Start.values,
        default=Bot.Start.NOW,
        help_text="`when_user_joins`: created at Recall once the user is in the meeting (when the broker sees it).",
    )
    obf_candidates = serializers.ListField(
        child=serializers.CharField(max_length=255),
        required=False,
        default=list,
        max_length=10,
        help_text="Other connections (ids or external_user_ids) whose OBF token may authorize the bot, in order: "
        "the first of [this user, the candidates] in the meeting when the bot joins. Each must allow it.",
    )
    wait_minutes = serializers.IntegerField(
        min_value=1, max_value=1440, default=30, help_text="With when_user_joins: how long to wait for the user."
    )
    handoff = serializers.BooleanField(
        default=False,
        help_text="OBF with candidates: when the user whose OBF the bot carries leaves (Zoom removes the bot) and "
        "another of [this user, the candidates] is still in, a successor bot is sent on their behalf (at most 3).",
    )

    def _visible(self):
        """The launch rule for whoever launches: the API's caller, or a form's signed-in person."""
        launcher = self.context["launcher"] if "launcher" in self.context else self.context["request"].user
        return connections_launchable_by(launcher=launcher)

    def validate_connection(self, value):
        if value is None:
            return None
        connection = self._visible().filter(public_id=value).first()
        if connection is None:
            raise serializers.ValidationError(NOT_YOUR_CONNECTION)
        return connection

    def _candidates(self, attrs) -> tuple:
        """Each named connection (id or external_user_id), active and on the launcher's Zoom app.
        Whether each allows it is the launch's question (a 403, not a 400)."""
        import uuid

        names = list(dict.fromkeys(attrs.get("obf_candidates") or ()))
        if not names:
            return ()
        connection = attrs.get("connection")
        if connection is None or Bot.TokenKind.OBF not in attrs.get("token_kinds", ()):
            raise serializers.ValidationError({"obf_candidates": "OBF candidates need an OBF launch on a connection."})
        found = []
        for name in names:
            active = ZoomConnection.objects.active().filter(app_id=connection.app_id)
            try:
                candidate = active.filter(public_id=uuid.UUID(name)).first()
            except ValueError:
                candidate = active.filter(user__external_user_id=name).order_by("-created_at").first()
            if candidate is None:
                raise serializers.ValidationError(
                    {"obf_candidates": f"No active Zoom connection of this Zoom app for {name!r}."}
                )
            if candidate.pk != connection.pk:
                found.append(candidate)
        return tuple(found)

    def validate(self, attrs):
        external_user_id = attrs.pop("external_user_id", None)
        if external_user_id is not None:
            if attrs.get("connection"):
                raise serializers.ValidationError({"external_user_id": "Give either connection or external_user_id."})
            connection = (
                self._visible()
                .filter(user__external_user_id=external_user_id, status=ZoomConnection.Status.ACTIVE)
                .order_by("-created_at")
                .first()
            )
            if connection is None:
                raise serializers.ValidationError(
                    {"external_user_id": "This user has no active Zoom connection: send them a connect link."}
                )
            attrs["connection"] = connection
        attrs["obf_candidates"] = self._candidates(attrs)
        if attrs.get("start") == Bot.Start.WHEN_USER_JOINS:
            if not attrs.get("connection"):
                raise serializers.ValidationError(
                    {"start": "when_user_joins waits for a user: give connection or external_user_id."}
                )
            if attrs.get("join_at"):
                raise serializers.ValidationError({"start": "when_user_joins starts when the user joins: no join_at."})
        if attrs.get("handoff"):
            if Bot.TokenKind.OBF not in attrs.get("token_kinds", ()):
                raise serializers.ValidationError({"handoff": "Hand-off is for OBF bots: add obf to token_kinds."})
            if not attrs["obf_candidates"]:
                raise serializers.ValidationError(
                    {"handoff": "Hand-off needs someone to hand the bot to: name obf_candidates."}
                )
        return attrs
