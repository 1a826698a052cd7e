from typing import TYPE_CHECKING, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from brokerproject.admin_kit import ChoicesFilter, HistoryInline, for_each_reporting
from zoomauth.models import ZoomApp

from . import recall
from .credentials import credential_create_customer_managed, credential_sync_status
from .forms import OBF_CANDIDATES_HELP, CheckedByTheApi
from .launch import LaunchError, LaunchRequest, bot_launch
from .meeting_urls import validate_zoom_meeting_url
from .models import Bot, BotStatusChange, RecallCredential, RecallOAuthApp
from .recall_apps import recall_app_delete, recall_app_push_secrets, recall_app_register
from .selectors import NOT_YOUR_CONNECTION, connections_launchable_by

# The mixin goes before a ModelAdmin; mypy reads it as one.
if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin
else:
    _ModelAdmin = object


class _CallsRecallOnAdd(_ModelAdmin):
    """The add view calls Recall in save_model; when that fails nothing is saved, the error is in
    the messages, and the person stays on the form instead of seeing "added successfully"."""

    def response_add(self, request, obj, post_url_continue=None):
        if obj.pk is None:
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def log_addition(self, request, obj, message):
        if obj.pk is not None:
            return super().log_addition(request, obj, message)
        return None


REGION_DEFAULT = [("", "RECALL_API_BASE_URL (the configured default)")]


class RegisterForm(forms.ModelForm):
    region = forms.ChoiceField(
        required=False,
        choices=REGION_DEFAULT,
        help_text="The Recall region whose API key is configured.",
    )

    class Meta:
        model = RecallOAuthApp
        fields = ("zoom_app",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from django.conf import settings

        cast(forms.ChoiceField, self.fields["region"]).choices = [*REGION_DEFAULT, *settings.RECALL_REGIONS.items()]
        cast(forms.ModelChoiceField, self.fields["zoom_app"]).queryset = ZoomApp.objects.filter(recall_app__isnull=True)


@admin.register(RecallOAuthApp)
class RecallOAuthAppAdmin(_CallsRecallOnAdd, admin.ModelAdmin):
    list_display = ("zoom_app", "recall_id", "base_url", "webhook_last_validation_at", "created_at")
    readonly_fields = ("recall_id", "base_url", "webhook_url", "marketplace_settings", "webhook_last_validation_at")
    actions = ("push_secrets", "delete_in_recall")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = RegisterForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("zoom_app", "region")
        return (
            "zoom_app",
            "recall_id",
            "base_url",
            "webhook_url",
            "marketplace_settings",
            "webhook_last_validation_at",
        )

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (("zoom_app",) if obj else ())

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deleting must go through Recall too
        return actions

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        try:
            registered = recall_app_register(
                zoom_app=form.cleaned_data["zoom_app"], region=form.cleaned_data["region"] or None
            )
        except recall.RecallError as exc:
            messages.error(request, f"Recall refused the registration: {exc}")
            return
        obj.pk, obj.recall_id, obj.base_url = registered.pk, registered.recall_id, registered.base_url
        messages.success(request, "Registered with Recall. Paste the broker's webhook URL into Zoom (see below).")

    @admin.display(description="What to paste into Zoom's Marketplace")
    def marketplace_settings(self, obj):
        return format_html(
            "<p>Event notification endpoint URL (the broker forwards to Recall): <code>{}</code></p>"
            "<p>OAuth redirect URL: <code>{}</code></p>",
            obj.zoom_app.webhook_url,
            obj.zoom_app.redirect_uri,
        )

    @admin.action(description="Send the current client secret and secret token to Recall", permissions=["change"])
    def push_secrets(self, request, queryset):
        pushed = for_each_reporting(
            request, queryset, lambda app: recall_app_push_secrets(recall_app=app), failures=(recall.RecallError,)
        )
        if pushed:
            messages.success(request, f"Sent to Recall for {pushed} app(s).")

    @admin.action(description="Delete in Recall and here", permissions=["delete"])
    def delete_in_recall(self, request, queryset):
        for_each_reporting(
            request, queryset, lambda app: recall_app_delete(recall_app=app), failures=(recall.RecallError,)
        )


@admin.register(RecallCredential)
class RecallCredentialAdmin(admin.ModelAdmin):
    list_display = ("connection", "mode", "status", "recall_id", "last_synced_at", "created_at")
    list_filter = ("mode", "status")
    readonly_fields = ("connection", "recall_app", "recall_id", "mode", "status", "last_synced_at", "created_at")
    actions = ("sync_status", "recreate")

    def has_add_permission(self, request):
        return False

    @admin.action(description="Read the status from Recall", permissions=["change"])
    def sync_status(self, request, queryset):
        for_each_reporting(
            request,
            queryset.select_related("recall_app"),
            lambda credential: credential_sync_status(credential=credential),
            failures=(recall.RecallError,),
        )

    @admin.action(description="Re-create in Recall (customer-managed)", permissions=["change"])
    def recreate(self, request, queryset):
        for_each_reporting(
            request,
            queryset.filter(mode=RecallCredential.Mode.CUSTOMER_MANAGED).select_related("connection"),
            lambda credential: credential_create_customer_managed(connection=credential.connection),
            failures=(recall.RecallError,),
        )


class BotStatusChangeInline(HistoryInline):
    model = BotStatusChange
    fields = ("occurred_at", "code", "sub_code", "webhook_id")


class LaunchBotForm(CheckedByTheApi, forms.ModelForm):
    """The admin's launcher: the API's rules (CheckedByTheApi) for the staff member launching."""

    meeting_url = forms.CharField(max_length=2000, validators=[validate_zoom_meeting_url])
    token_kinds = forms.MultipleChoiceField(
        choices=Bot.TokenKind.choices, widget=forms.CheckboxSelectMultiple, required=False
    )
    zak_from_service_account = forms.BooleanField(required=False)
    bypass_waiting_room = forms.BooleanField(required=False)
    start = forms.ChoiceField(choices=Bot.Start.choices, initial=Bot.Start.NOW, required=False)
    wait_minutes = forms.IntegerField(initial=30, required=False, help_text="With when_user_joins (1 to 1440).")
    obf_candidates = forms.CharField(required=False, max_length=2000, help_text=OBF_CANDIDATES_HELP)
    handoff = forms.BooleanField(
        required=False, help_text="OBF with candidates: a successor bot when the bot's OBF user leaves (at most 3)."
    )

    class Meta:
        model = Bot
        fields = ("user", "connection", "meeting_url", "bot_name", "join_at")
        error_messages = {"connection": {"invalid_choice": NOT_YOUR_CONNECTION}}


class DuplicateFilter(ChoicesFilter):
    title = "second bots"
    parameter_name = "second_bot"
    options = {
        "duplicate": ("A second Recall bot of a launch", lambda bots: bots.filter(duplicate_of__isnull=False)),
        "has_duplicates": ("A launch with a second bot", lambda bots: bots.filter(duplicates__isnull=False).distinct()),
    }


@admin.register(Bot)
class BotAdmin(_CallsRecallOnAdd, admin.ModelAdmin):
    list_display = (
        "created_at",
        "bot_name",
        "meeting_id",
        "user",
        "connection",
        "status_code",
        "sub_code",
        "recall_id",
        "second_bot",
    )
    # Every stored code, Recall's undeclared ones too (a choices filter would list only Bot.Status).
    list_filter = (("status", admin.AllValuesFieldListFilter), "sub_code", DuplicateFilter)
    date_hierarchy = "created_at"
    search_fields = ("meeting_id", "recall_id", "user__username")
    list_select_related = ("user", "connection", "connection__app", "duplicate_of")
    inlines = (BotStatusChangeInline,)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = type("LaunchBotForm", (LaunchBotForm,), {"launcher": request.user})
            # The launch fields that share a name with a Bot field (start, obf_candidates, ...) are
            # the launch's, not the row's: bot_launch stores the bot, not the ModelForm.
            kwargs["fields"] = LaunchBotForm.Meta.fields
        return super().get_form(request, obj, change, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "connection":  # the API's launch rule, for the staff member launching
            kwargs["queryset"] = connections_launchable_by(launcher=request.user).active()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_inlines(self, request, obj):
        return self.inlines if obj else ()

    def get_fields(self, request, obj=None):
        if obj is None:
            return (
                "user",
                "connection",
                "meeting_url",
                "token_kinds",
                "zak_from_service_account",
                "bypass_waiting_room",
                "bot_name",
                "join_at",
                "start",
                "wait_minutes",
                "obf_candidates",
                "handoff",
            )
        return (
            "recall_id",
            "duplicate_of_link",
            "duplicates_list",
            "launch_ambiguous_at",
            "user",
            *("status_code" if name == "status" else name for name in Bot.DESCRIBED_BY),
            "previous_bot_link",
            "next_bot_link",
            "token_fetches",
            "status_updated_at",
            "last_error",
            "created_at",
        )

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        try:
            bot = bot_launch(request=LaunchRequest.from_cleaned(user=data["user"], data=data))
        except LaunchError as exc:
            messages.error(request, str(exc))
            return
        obj.pk = bot.pk
        if bot.status == Bot.Status.WAITING_FOR_USER:
            messages.success(request, "The bot waits for its user to join the meeting.")
        else:
            messages.success(request, f"Launched bot {bot.recall_id or '(queued)'}.")

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(duplicate_count=Count("duplicates"))

    @admin.display(description="second bot", ordering="duplicate_count")
    def second_bot(self, obj):
        """A second Recall bot for one launch, either side: staff see both at a glance."""
        if obj.duplicate_of_id:
            return format_html("duplicate of {}", obj.duplicate_of.recall_id or obj.duplicate_of.public_id)
        if getattr(obj, "duplicate_count", 0):
            return f"{obj.duplicate_count} duplicate(s)"
        return "—"

    @admin.display(description="duplicate of (the launch this second Recall bot belongs to)")
    def duplicate_of_link(self, obj):
        if obj.duplicate_of_id is None:
            return "—"
        launch = obj.duplicate_of
        url = reverse("admin:recallbots_bot_change", args=[launch.pk])
        return format_html('<a href="{}">{}</a> (Recall bot {})', url, launch, launch.recall_id or "—")

    @admin.display(description="duplicates (other Recall bots for this launch)")
    def duplicates_list(self, obj):
        rows = [
            (reverse("admin:recallbots_bot_change", args=[pk]), recall_id, status)
            for pk, recall_id, status in obj.duplicates.values_list("pk", "recall_id", "status")
        ]
        if not rows:
            return "—"
        return format_html_join(", ", '<a href="{}">Recall bot {}</a> ({})', rows)

    def _bot_link(self, bot):
        if bot is None:
            return "—"
        url = reverse("admin:recallbots_bot_change", args=[bot.pk])
        return format_html('<a href="{}">{}</a>', url, bot.public_id)

    @admin.display(description="took over from (hand-off)")
    def previous_bot_link(self, obj):
        return self._bot_link(obj.previous_bot)

    @admin.display(description="handed off to")
    def next_bot_link(self, obj):
        return self._bot_link(Bot.objects.filter(previous_bot=obj).first())

    @admin.display(description="status", ordering="status")
    def status_code(self, obj):
        """The code as stored: a code Recall added after Bot.Status shows as it is, not as "-"."""
        return obj.status

    @admin.display(description="what to fix")
    def fatal_hint(self, obj):
        return obj.fatal_hint or "—"

    @admin.display(description="token fetches by Recall")
    def token_fetches(self, obj):
        rows = [
            (
                fetch.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                fetch.kind,
                fetch.status_code,
                fetch.latency_ms,
                fetch.zoom_calls,
                "" if fetch.status_code == 200 else fetch.outcome,
            )
            for fetch in obj.token_fetches()
        ]
        if not rows:
            return "—"
        return format_html(
            "<table><tr><th>when</th><th>kind</th><th>status</th><th>ms</th><th>Zoom calls</th><th>reason</th></tr>"
            "{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )
