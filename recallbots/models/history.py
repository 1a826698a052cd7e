"""What a bot shows of its life: Recall's status events (BotStatusChange), the token fetches its
URLs served, and the two on one timeline. Part of the Bot model (a mixin of it)."""

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from django.db import models
from django.db.models import Q

from zoomauth.models import CallbackGrant, CallbackLog

if TYPE_CHECKING:
    from .bot import Bot


class BotHistory:
    """The history reads of Bot (which see); they never write."""

    if TYPE_CHECKING:  # what this part of Bot uses of the rest of it (recallbots.models.bot)
        Status: ClassVar[type["Bot.Status"]]
        TokenKind: ClassVar[type["Bot.TokenKind"]]
        pk: int
        public_id: uuid.UUID
        connection_id: int | None
        meeting_id: str
        token_kinds: list[str]
        created_at: datetime
        status_updated_at: datetime | None
        sub_code: str
        status_changes: "models.Manager[BotStatusChange]"

        @property
        def is_final(self) -> bool: ...

    FATAL_HINTS = {
        "zoom_invalid_join_token": "The join-token callback returned something Zoom refused: check that the "
        "meeting's host has connected Zoom and that the join-token URL answers with a bare token.",
        "meeting_requires_sign_in": "The meeting only admits signed-in users: launch with a ZAK "
        "(the user's or the service account's).",
        "zoom_sdk_credentials_missing": "Recall has no Zoom SDK credentials for this workspace.",
        "zoom_email_required": "The meeting requires an email: registration-required meetings need zoom.user_email.",
        "zoom_registration_required": "The meeting requires registration: use the link with tk= and an email.",
        "meeting_not_found": "Zoom says the meeting does not exist: check the meeting link.",
        "meeting_password_incorrect": "The passcode is wrong: paste the invite link that includes pwd=.",
        "zoom_meeting_not_accessible": "The meeting is not accessible to the bot "
        "(an external meeting without OBF or ZAK?).",
        "zoom_obf_user_not_in_meeting": "The OBF bot waits for its user: the user must join the meeting first.",
    }

    # Recall's token GETs carry no bot id: a fetch belongs to a bot when it is for the bot's
    # connection, of a kind the bot was given, for its meeting, within its life (with this slack).
    FETCH_SLACK = timedelta(seconds=5)

    def obf_minted_for(self):
        """The connection (id) whose OBF token the bot last fetched, and when (None, None)."""
        fetch = (
            CallbackLog.objects.filter(grant__holder=self.callback_holder, kind=CallbackLog.Kind.OBF, status_code=200)
            .order_by("-created_at")
            .values_list("connection_id", "created_at")
            .first()
        )
        return fetch or (None, None)

    @property
    def callback_holder(self) -> str:
        """Who the bot's token-URL credentials (zoomauth's CallbackGrant) are made for."""
        return f"bot:{self.public_id}"

    def token_fetches(self):
        """The token callbacks Recall made for this bot (never a token: the audit holds none):
        those that came with the bot's own URLs; for bots launched before bots had their own
        URLs, those for its connection, kinds and meeting during its life."""
        if self.pk and CallbackGrant.objects.filter(holder=self.callback_holder).exists():
            return (
                CallbackLog.objects.filter(grant__holder=self.callback_holder)
                .select_related("connection")
                .order_by("created_at")[:100]
            )
        kinds = [self.TokenKind(kind).callback_kind for kind in self.token_kinds if kind in self.TokenKind.values]
        if self.connection_id is None or not kinds:
            return CallbackLog.objects.none()
        fetches = CallbackLog.objects.filter(
            connection_id=self.connection_id, kind__in=kinds, created_at__gte=self.created_at - self.FETCH_SLACK
        ).filter(Q(meeting_id=self.meeting_id) | Q(meeting_id=""))
        if self.is_final and self.status_updated_at:
            fetches = fetches.filter(created_at__lte=self.status_updated_at + self.FETCH_SLACK)
        return fetches.order_by("created_at")[:100]

    def timeline(self) -> list[dict]:
        """Status changes and token fetches in one list by time, for the bot page and the admin."""
        rows = [
            {"at": change.occurred_at, "what": "status", "code": change.code, "sub_code": change.sub_code}
            for change in self.status_changes.all()
        ]
        rows += [{"at": fetch.created_at, "what": "fetch", "fetch": fetch} for fetch in self.token_fetches()]
        return sorted(rows, key=lambda row: row["at"])

    @property
    def fatal_hint(self) -> str:
        if not self.sub_code:
            return ""
        return self.FATAL_HINTS.get(self.sub_code, "")


class BotStatusChange(models.Model):
    """One status event; webhook_id makes Recall's redeliveries idempotent."""

    bot = models.ForeignKey("Bot", on_delete=models.CASCADE, related_name="status_changes")
    code = models.CharField(max_length=50)
    sub_code = models.CharField(max_length=100, blank=True)
    occurred_at = models.DateTimeField()
    webhook_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("occurred_at", "pk")

    def __str__(self) -> str:
        return self.code + (f" ({self.sub_code})" if self.sub_code else "")
