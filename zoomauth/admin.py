from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.cache import never_cache

from brokerproject.admin_kit import ChoicesFilter, for_each_reporting

from . import selectors, zoom
from .models import CallbackLog, ConnectSession, ZoomApp, ZoomConnection, ZoomMeeting
from .services.connect import connection_disconnect
from .services.grants import connection_rotate_callback_secret, record_reveal
from .services.refresh import ConnectionUnusable, connection_fresh_access_token
from .token_sources import TokenSourceError


class ZoomAppForm(forms.ModelForm):
    """Secrets are write-only: the form never shows them, and an empty field keeps the old value."""

    client_secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), help_text="Leave empty to keep the current one."
    )
    webhook_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Zoom's Secret Token (Features → Event subscriptions). Leave empty to keep the current one.",
    )

    class Meta:
        model = ZoomApp
        fields = (
            "name",
            "kind",
            "client_id",
            "client_secret",
            "webhook_secret",
            "redirect_uri_override",
            "expected_scopes",
            "credential_mode",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.pop("client_secret", None)
        self.initial.pop("webhook_secret", None)

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        for name in ("client_secret", "webhook_secret"):
            if not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(ZoomApp.objects.get(pk=self.instance.pk), name)
        return cleaned


@admin.register(ZoomApp)
class ZoomAppAdmin(admin.ModelAdmin):
    form = ZoomAppForm
    list_display = ("name", "kind", "client_id", "credential_mode", "connection_count", "created_at")
    readonly_fields = ("public_id", "redirect_uri", "webhook_url", "marketplace_settings", "created_at", "updated_at")
    write_only_fields = ("client_secret", "webhook_secret")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        return ("client_secret_state", "webhook_secret_state", *self.readonly_fields)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only mode prints each field's value: a viewer learns whether a secret is set, never it.
            return [name for name in fields if name not in self.write_only_fields]
        return fields

    @admin.display(description="client secret")
    def client_secret_state(self, obj):
        return "set" if obj.client_secret else "not set"

    @admin.display(description="Zoom's Secret Token")
    def webhook_secret_state(self, obj):
        return "set" if obj.webhook_secret else "not set"

    @admin.display(description="connections")
    def connection_count(self, obj):
        return obj.connections.count()

    @admin.display(description="What to paste into Zoom's Marketplace")
    def marketplace_settings(self, obj):
        if not obj.pk:
            return "Save the app first."
        return format_html(
            "<p>OAuth redirect URL and allow list: <code>{}</code></p>"
            "<p>Event notification endpoint URL: <code>{}</code> (events: Meeting has been created; "
            "User's profile info has been updated; App deauthorized; and for bots that wait for their "
            "user (OBF): Start Meeting, End Meeting, Participant/Host joined meeting, Participant/Host left "
            "meeting, i.e. <code>meeting.started meeting.ended meeting.participant_joined "
            "meeting.participant_left</code>)</p>"
            "<p>Scopes: <code>user:read:user</code> (PMI), <code>user:read:zak</code> (ZAK), "
            "<code>user:read:token</code> (OBF), <code>meeting:read:local_recording_token</code> (join token); "
            "Recall-managed also needs <code>meeting:read:list_meetings meeting:read:meeting</code>.</p>",
            obj.redirect_uri,
            obj.webhook_url,
        )


class HealthFilter(ChoicesFilter):
    """The overview's figures, as filters: connections whose refresh fails, or whose token runs
    out without a refresh."""

    title = "health"
    parameter_name = "health"
    options = {
        "failing": ("Failing refreshes", selectors.failing),
        "expiring": ("Expiring without refresh", selectors.expiring_without_refresh),
    }


@admin.register(ZoomConnection)
class ZoomConnectionAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "user",
        "zoom_user_id",
        "app",
        "status",
        "token_source",
        "is_service_account",
        "access_token_expires_at",
        "last_refreshed_at",
        "consecutive_failures",
        "last_callback",
        "last_error",
    )
    list_filter = (HealthFilter, "status", "app", "token_source", "is_service_account")
    search_fields = ("email", "zoom_user_id", "user__username", "user__email")
    list_select_related = ("user", "app")
    actions = ("refresh_now", "disconnect", "rotate_callback_secret")
    fields = (
        "user",
        "app",
        "zoom_user_id",
        "zoom_account_id",
        "email",
        "pmi",
        "scopes",
        "status",
        "is_service_account",
        "token_source",
        "access_token_expires_at",
        "refresh_token_issued_at",
        "last_refreshed_at",
        "consecutive_failures",
        "last_error",
        "callback_urls",
        "callback_secret_rotated_at",
        "created_at",
        "updated_at",
        "revoked_at",
    )
    readonly_fields = tuple(f for f in fields if f != "is_service_account")

    def has_add_permission(self, request):
        return False  # connections are made by their users through Zoom's consent screen

    def save_model(self, request, obj, form, change):
        # Only what staff changed: a full save would write back the tokens, state and lease read
        # with the form, and a refresh stored meanwhile (Zoom rotated the refresh token) be lost.
        obj.save(update_fields=[*form.changed_data, "updated_at"])

    def get_queryset(self, request):
        latest = CallbackLog.objects.filter(connection=OuterRef("pk")).order_by("-created_at").values("created_at")[:1]
        return super().get_queryset(request).annotate(last_callback_at=Subquery(latest))

    @admin.display(description="last callback", ordering="last_callback_at")
    def last_callback(self, obj):
        return obj.last_callback_at or "—"

    @admin.display(description="Callback URLs")
    def callback_urls(self, obj):
        """Masked: the secret is shown only on the reveal page, a recorded staff action."""
        if obj.status == ZoomConnection.Status.REVOKED:
            return "—"
        return format_html(
            "<p>access_token_callback_url: <code>{}</code></p><p>zoom.zak_url: <code>{}</code></p>"
            '<p><a href="{}">Reveal the full URLs</a> (recorded in this connection\'s history)</p>',
            obj.callback_url("access-token", masked=True),
            obj.callback_url("zak", masked=True),
            reverse("admin:zoomauth_zoomconnection_reveal", args=[obj.pk]),
        )

    def get_urls(self):
        reveal = self.admin_site.admin_view(never_cache(self.reveal_callback_urls))
        return [
            path("<int:object_id>/reveal-callback-urls/", reveal, name="zoomauth_zoomconnection_reveal"),
            path(
                "<int:object_id>/connect-link/",
                self.admin_site.admin_view(never_cache(self.make_connect_link)),
                name="zoomauth_zoomconnection_connect_link",
            ),
            *super().get_urls(),
        ]

    def make_connect_link(self, request, object_id):
        """POST: a connect link for this connection's user, shown once (server-side message), to
        send them so that they connect Zoom again."""
        if request.method != "POST" or not request.user.has_perm("zoomauth.add_connectsession"):
            raise PermissionDenied
        connection = get_object_or_404(ZoomConnection.objects.select_related("user", "app"), pk=object_id)
        session, raw = ConnectSession.issue(user=connection.user, app=connection.app)
        who = connection.user.external_user_id or connection.user.username
        messages.warning(
            request,
            f"Connect link for {who} (single use, until {session.expires_at:%H:%M} UTC; shown once): "
            f"{ConnectSession.url_for(raw)}",
        )
        self.log_change(request, connection, "Made a connect link for its user to reconnect.")
        return redirect("admin:index")

    def reveal_callback_urls(self, request, object_id):
        """GET asks for confirmation; POST shows the URLs with their secret and records who saw them."""
        connection = get_object_or_404(ZoomConnection, pk=object_id)
        if not request.user.has_perm("zoomauth.reveal_callback_urls"):
            raise PermissionDenied
        revealed = request.method == "POST" and connection.status != ZoomConnection.Status.REVOKED
        if revealed:
            record_reveal(user=request.user, connections=[connection], where="in the admin")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": connection,
            "title": "Callback URLs",
            "revealed": revealed,
            "urls": [
                ("access_token_callback_url", connection.access_token_callback_url),
                ("zoom.zak_url", connection.zak_url),
                ("zoom.obf_token_url (append the meeting_id)", connection.callback_url("obf") + "&meeting_id="),
                ("join-token URL (append the meeting_id)", connection.callback_url("join-token") + "&meeting_id="),
            ]
            if revealed
            else [],
        }
        return TemplateResponse(request, "admin/zoomauth/zoomconnection/reveal_callback_urls.html", context)

    @admin.action(description="Refresh the access token now", permissions=["change"])
    def refresh_now(self, request, queryset):
        asked_at = timezone.now()
        done = for_each_reporting(
            request,
            queryset,
            lambda connection: connection_fresh_access_token(
                connection_id=connection.pk, min_validity=timedelta(0), refresh_if_refreshed_before=asked_at
            ),
            failures=(ConnectionUnusable, zoom.ZoomError, TokenSourceError),
        )
        if done:
            messages.success(request, f"Refreshed {done} connection(s).")

    @admin.action(description="Disconnect (revoke at Zoom, wipe tokens)", permissions=["delete"])
    def disconnect(self, request, queryset):
        for connection in queryset.exclude(status=ZoomConnection.Status.REVOKED):
            connection_disconnect(connection=connection, reason="Disconnected by staff.")
        messages.success(request, "Disconnected.")

    @admin.action(description="Rotate the callback secret (old URLs stop working)", permissions=["change"])
    def rotate_callback_secret(self, request, queryset):
        for connection in queryset.exclude(status=ZoomConnection.Status.REVOKED):
            connection_rotate_callback_secret(connection=connection)
        messages.warning(
            request,
            "Callback secrets rotated. Customer-managed Recall credentials are being re-registered; "
            "bots already scheduled keep the old URLs and will get 401.",
        )


@admin.register(ZoomMeeting)
class ZoomMeetingAdmin(admin.ModelAdmin):
    list_display = ("meeting_id", "host_connection", "topic", "created_at")
    search_fields = ("meeting_id",)


class AnsweredFilter(ChoicesFilter):
    title = "answer"
    parameter_name = "answered"
    options = {
        "ok": ("A token (200)", lambda logs: logs.filter(status_code=200)),
        "refused": ("No token (anything else)", lambda logs: logs.exclude(status_code=200)),
    }


@admin.register(CallbackLog)
class CallbackLogAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "connection",
        "meeting_id",
        "status_code",
        "outcome",
        "latency_ms",
        "zoom_calls",
        "signature_checked",
        "client_address",
    )
    list_filter = (AnsweredFilter, "kind", "status_code", "signature_checked")
    date_hierarchy = "created_at"
    search_fields = ("meeting_id", "connection__email", "connection__zoom_user_id")
    list_select_related = ("connection", "connection__app")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
