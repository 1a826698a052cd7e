from django import forms

from zoomauth.models import ZoomConnection

from .meeting_urls import validate_zoom_meeting_url
from .models import Bot
from .selectors import NOT_YOUR_CONNECTION, connections_launchable_by


class LaunchForm(forms.Form):
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
    wait_minutes = forms.IntegerField(
        min_value=1, max_value=1440, initial=30, required=False, label="Wait for you at most (minutes)"
    )

    def clean_start(self):
        return self.cleaned_data.get("start") or Bot.Start.NOW

    def clean_wait_minutes(self):
        return self.cleaned_data.get("wait_minutes") or 30

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("start") == Bot.Start.WHEN_USER_JOINS and not cleaned.get("connection"):
            self.add_error("start", "Waiting for you needs your Zoom account: choose it above.")
        return cleaned

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = connections_launchable_by(launcher=user).active()
        if self.fields["connection"].queryset.count() == 1:
            self.fields["connection"].initial = self.fields["connection"].queryset.first()
