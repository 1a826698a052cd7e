import uuid
from datetime import datetime

from django.db import models
from django.urls import reverse
from django.utils import timezone

from brokerproject.crypto import secret_matches

from .callback_log import CallbackLog
from .connections import ZoomConnection
from .zoom_apps import public_url


class CallbackGrantQuerySet(models.QuerySet["CallbackGrant"]):
    def live(self, *, now: datetime | None = None):
        return self.filter(expires_at__gt=now or timezone.now())


class CallbackGrant(models.Model):
    """A bot's own credential for token callbacks: some kinds of token, from one connection, for
    one meeting, until the bot ends (plus a grace period). A leak at Recall exposes one meeting's
    tokens for a while, not the user's grant. The connection's own secret stays for Recall's
    access-token callback and the customer's backend. `holder` names who it was made for (a bot),
    for the audit; zoomauth knows nothing else of bots."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    connection = models.ForeignKey(ZoomConnection, on_delete=models.CASCADE, related_name="callback_grants")
    secret_hash = models.CharField(max_length=64)
    kinds = models.JSONField(default=list)
    meeting_id = models.CharField(max_length=20, blank=True)
    # Decided at launch: a join token minted for this URL skips the waiting room (the query's value
    # is ignored, so whoever holds the URL cannot add it).
    bypass_waiting_room = models.BooleanField(default=False)
    holder = models.CharField(max_length=100, db_index=True)
    # OBF only: other connections (ids, in order) whose token is minted instead of `connection`'s
    # when `connection`'s user is not in the meeting and one of them is.
    obf_candidates = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    objects = CallbackGrantQuerySet.as_manager()

    class Meta:
        verbose_name = "bot callback credential"

    def __str__(self) -> str:
        return f"{self.holder}: {', '.join(self.kinds)}"

    def check_secret(self, raw: str) -> bool:
        return secret_matches(raw, self.secret_hash)

    def callback_url(self, kind: str, secret: str, **extra: str) -> str:
        query = {"grant": str(self.public_id), "auth_token": secret, **extra}
        if self.meeting_id and kind in (CallbackLog.Kind.OBF, CallbackLog.Kind.JOIN_TOKEN, CallbackLog.Kind.ZAK):
            query.setdefault("meeting_id", self.meeting_id)
        return public_url(reverse("zoomauth:token-callback", kwargs={"kind": kind}), query)
