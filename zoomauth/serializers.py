import re
from urllib.parse import urlsplit

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import ZoomApp, ZoomConnection

# What a browser reads differently from Python's URL parser: backslashes (read as "/"),
# whitespace and control characters (stripped before parsing).
_AMBIGUOUS = re.compile(r"[\\\x00-\x20\x7f]")
# host[:port], nothing else: no userinfo, no brackets, no percent-encoding.
_PLAIN_AUTHORITY = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::\d{1,5})?$", re.IGNORECASE)


def return_url_problem(value: str) -> str | None:
    """Why a connect session's return_url is refused, or None. The URL must mean the same thing
    to a browser as to this check: https (http only with DEBUG), a plain host from
    CONNECT_RETURN_URL_HOSTS, no userinfo, no backslash, whitespace or control character."""
    if _AMBIGUOUS.search(value):
        return "return_url has characters browsers read differently (a backslash, whitespace or a control character)."
    parsed = urlsplit(value)
    schemes = ("https", "http") if settings.DEBUG else ("https",)
    if parsed.scheme not in schemes:
        return "return_url must be an https:// address." if not settings.DEBUG else "return_url must be http(s)://."
    if not value.lower().startswith(parsed.scheme + "://") or not _PLAIN_AUTHORITY.match(parsed.netloc):
        return "return_url must be scheme://host/path, without user names, passwords or other tricks."
    allowed = {host.lower() for host in settings.CONNECT_RETURN_URL_HOSTS}
    if (parsed.hostname or "").lower() not in allowed:
        return "This return_url's host is not allowed: add it to CONNECT_RETURN_URL_HOSTS."
    return None


class CallbackUrlsSerializer(serializers.Serializer):
    access_token = serializers.URLField(help_text="Recall's access_token_callback_url (customer-managed OAuth).")
    zak = serializers.URLField(help_text="zoom.zak_url for a bot.")
    obf = serializers.URLField(help_text="zoom.obf_token_url: append the meeting number, `&meeting_id=<number>`.")
    join_token = serializers.URLField(
        help_text="zoom.join_token_url: append `&meeting_id=<number>` (and `&bypass_waiting_room=true` if wanted)."
    )


class ConnectionSerializer(serializers.ModelSerializer):
    """A Zoom connection as the customer's backend sees it. callback_urls carry the connection's
    secret: they are null once the connection is not active."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    external_user_id = serializers.CharField(source="user.external_user_id", read_only=True, allow_null=True)
    zoom_email = serializers.EmailField(source="email", read_only=True)
    app = serializers.UUIDField(source="app.public_id", read_only=True, help_text="The Zoom app's id.")
    status_reason = serializers.CharField(source="last_error", read_only=True)
    callback_urls = serializers.SerializerMethodField()

    class Meta:
        model = ZoomConnection
        fields = (
            "id",
            "external_user_id",
            "status",
            "zoom_user_id",
            "zoom_email",
            "app",
            "created_at",
            "status_reason",
            "pmi",
            "is_service_account",
            "allow_join_tokens_for_others",
            "allow_obf_for_others",
            "callback_urls",
        )

    @extend_schema_field(CallbackUrlsSerializer(allow_null=True))
    def get_callback_urls(self, obj) -> dict | None:
        """In full only for the connections the view revealed (context["revealed"]), else masked."""
        if not obj.is_usable:
            return None
        masked = obj.pk not in self.context.get("revealed", ())
        return {
            "access_token": obj.callback_url("access-token", masked=masked),
            "zak": obj.callback_url("zak", masked=masked),
            "obf": obj.callback_url("obf", masked=masked),
            "join_token": obj.callback_url("join-token", masked=masked),
        }


class ConnectionSettingsSerializer(serializers.Serializer):
    allow_join_tokens_for_others = serializers.BooleanField(
        required=False,
        help_text="Let bots launched by other users into meetings this user hosts get join tokens minted "
        "from this connection (off by default).",
    )
    allow_obf_for_others = serializers.BooleanField(
        required=False,
        help_text="Let bots launched by other users name this connection as an OBF candidate (off by default).",
    )

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError(
                {"allow_join_tokens_for_others": "Give allow_join_tokens_for_others or allow_obf_for_others."}
            )
        return attrs


class ConnectSessionRequestSerializer(serializers.Serializer):
    external_user_id = serializers.CharField(max_length=255, help_text="Your id for the end user.")
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    app = serializers.UUIDField(required=False, allow_null=True, help_text="The Zoom app's id; optional with one app.")
    return_url = serializers.URLField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="Where the browser goes afterwards, with status=connected&connection=<id> or "
        "status=error&reason=<code>. Its host must be in CONNECT_RETURN_URL_HOSTS.",
    )

    def validate_app(self, value):
        apps = ZoomApp.objects.order_by("name")
        if value is None:
            if apps.count() != 1:
                raise serializers.ValidationError("Name the Zoom app: the broker has more than one (or none).")
            return apps.first()
        app = apps.filter(public_id=value).first()
        if app is None:
            raise serializers.ValidationError("No Zoom app with this id.")
        return app

    def validate_return_url(self, value):
        if not value:
            return ""
        problem = return_url_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs):
        if "app" not in attrs:
            attrs["app"] = self.validate_app(None)
        return attrs


class ConnectSessionSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="Send the end user here; single use, no sign-in.")
    expires_at = serializers.DateTimeField()
    external_user_id = serializers.CharField()
