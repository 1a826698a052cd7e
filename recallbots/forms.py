import re
from typing import TYPE_CHECKING, cast

from django import forms

from zoomauth.models import ZoomConnection

from .meeting_urls import validate_zoom_meeting_url
from .models import Bot
from .selectors import NOT_YOUR_CONNECTION, connections_launchable_by
from .serializers import LaunchBotSerializer


def _messages(errors) -> list[str]:
    if isinstance(errors, dict):  # a list field's errors by position
        return [message for value in errors.values() for message in _messages(value)]
    if isinstance(errors, list | tuple):
        return [message for value in errors for message in _messages(value)]
    return [str(errors)]


# The mixin goes before a Form or a ModelForm; mypy reads it as the forms' common base.
if TYPE_CHECKING:
    _Form = forms.BaseForm
else:
    _Form = object


class CheckedByTheApi(_Form):
    """A launch form whose rules are the API's: once its own fields parse, the body the API would
    get goes through LaunchBotSerializer for `launcher`, and its errors land on the same fields
    (or the form, for a field it does not show); its validated data becomes the cleaned data."""

    launcher = None

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        connection = cleaned.get("connection")
        body = {
            "meeting_url": cleaned.get("meeting_url", ""),
            "connection": str(connection.public_id) if connection else None,
            "token_kinds": cleaned.get("token_kinds") or [],
            "zak_from_service_account": bool(cleaned.get("zak_from_service_account")),
            "bypass_waiting_room": bool(cleaned.get("bypass_waiting_room")),
            "bot_name": cleaned.get("bot_name") or "Recall Bot",
            "join_at": cleaned.get("join_at"),
            "start": cleaned.get("start") or Bot.Start.NOW,
            "wait_minutes": 30 if cleaned.get("wait_minutes") is None else cleaned["wait_minutes"],
            "obf_candidates": [name for name in re.split(r"[\s,]+", cleaned.get("obf_candidates") or "") if name],
            "handoff": bool(cleaned.get("handoff")),
        }
        serializer = LaunchBotSerializer(data=body, context={"launcher": self.launcher})
        if not serializer.is_valid():
            for name, errors in serializer.errors.items():
                self.add_error(name if name in self.fields else None, _messages(errors))
            return cleaned
        cleaned.update(serializer.validated_data)
        return cleaned


OBF_CANDIDATES_HELP = (
    "Other people whose OBF token may let the bot in (their connection ids or external user ids, comma-separated); "
    "each must allow it on their connection."
)


class LaunchForm(CheckedByTheApi, forms.Form):
    meeting_url = forms.CharField(
        label="Zoom meeting link",
        max_length=2000,
        validators=[validate_zoom_meeting_url],
        widget=forms.TextInput(attrs={"placeholder": "https://zoom.us/j/123456789?pwd=..."}),
    )
    connection = forms.ModelChoiceField(
        queryset=ZoomConnection.objects.none(),
        required=False,
        label="Zoom account",
        error_messages={"invalid_choice": NOT_YOUR_CONNECTION},
    )
    token_kinds = forms.MultipleChoiceField(
        choices=Bot.TokenKind.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        initial=[Bot.TokenKind.OBF],
        label="Tokens the bot fetches when it joins",
    )
    zak_from_service_account = forms.BooleanField(required=False, label="Take the ZAK from the service account")
    bypass_waiting_room = forms.BooleanField(required=False, label="Join token skips the waiting room")
    bot_name = forms.CharField(max_length=100, initial="Recall Bot")
    start = forms.ChoiceField(
        choices=Bot.Start.choices,
        initial=Bot.Start.NOW,
        required=False,
        label="Send the bot",
        widget=forms.RadioSelect,
    )
    # Bounds and the rules between fields are the API's (CheckedByTheApi), not repeated here.
    wait_minutes = forms.IntegerField(initial=30, required=False, label="Wait for you at most (minutes)")
    obf_candidates = forms.CharField(
        required=False, max_length=2000, label="OBF candidates", help_text=OBF_CANDIDATES_HELP
    )
    handoff = forms.BooleanField(
        required=False, label="Hand the bot off to a candidate still in the meeting when its OBF user leaves"
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.launcher = user
        connection = cast(forms.ModelChoiceField, self.fields["connection"])
        connection.queryset = connections_launchable_by(launcher=user).active()
        if connection.queryset.count() == 1:
            connection.initial = connection.queryset.first()
