import secrets
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from brokerproject import claims
from brokerproject.crypto import StrictEncryptedTextField, secret_hash, secret_matches


def public_url(path: str, query: dict | None = None) -> str:
    url = settings.PUBLIC_BASE_URL + path
    return f"{url}?{urlencode(query)}" if query else url


class ZoomApp(models.Model):
    """A Zoom Marketplace app (General app, OAuth) whose users connect through the broker."""

    class Kind(models.TextChoices):
        USER_LEVEL = "user_level", "User-managed"
        ACCOUNT_LEVEL = "account_level", "Admin-managed (account level)"

    class CredentialMode(models.TextChoices):
        CUSTOMER_MANAGED = "customer_managed", "Customer-managed (the broker keeps the tokens)"
        RECALL_MANAGED = "recall_managed", "Recall-managed (Recall keeps the tokens)"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.USER_LEVEL)
    client_id = models.CharField(max_length=100, unique=True)
    client_secret = StrictEncryptedTextField(blank=True)
    webhook_secret = StrictEncryptedTextField(blank=True, help_text="Zoom's 'Secret Token' for event notifications.")
    redirect_uri_override = models.URLField(
        blank=True, help_text="Leave empty to use PUBLIC_BASE_URL + /zoom/callback/ (it must match Zoom exactly)."
    )
    expected_scopes = models.CharField(
        max_length=500,
        blank=True,
        default="user:read:user user:read:zak user:read:token meeting:read:local_recording_token",
        help_text="Space-separated scopes the app is configured with in Zoom's Marketplace.",
    )
    credential_mode = models.CharField(
        max_length=20, choices=CredentialMode.choices, default=CredentialMode.CUSTOMER_MANAGED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Zoom app"

    def __str__(self) -> str:
        return self.name

    @property
    def redirect_uri(self) -> str:
        return self.redirect_uri_override or public_url(reverse("zoomauth:oauth-redirect"))

    @property
    def webhook_url(self) -> str:
        return public_url(reverse("webhooks:zoom", kwargs={"app_public_id": self.public_id}))


# A refresh's lease: taken when it starts (by the database's clock) and free once older than the
# refresh's deadline plus a margin; only its holder stores Zoom's answer or frees it.
REFRESH_LEASE = claims.Lease(field="refresh_started_at", holder_field="refresh_lease_holder", from_start=True)


class ZoomConnectionQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status=ZoomConnection.Status.ACTIVE)

    def due_for_refresh(self, *, now: datetime | None = None):
        """Locally held tokens that expire within the refresh window, or sat unused too long.

        Both branches are served by the (status, token_source, ...) indexes below, so a beat
        tick costs in proportion to the rows that are due, not to the table.
        """
        now = now or timezone.now()
        return (
            self.active()
            .filter(token_source=ZoomConnection.TokenSource.LOCAL)
            .filter(
                Q(access_token_expires_at__lt=now + settings.ZOOM_REFRESH_WINDOW)
                | Q(last_refreshed_at__lt=now - settings.ZOOM_REFRESH_KEEPALIVE)
            )
            .exclude(refresh_not_before__gt=now)
        )

    # The refresh lease: one refresh per connection at a time, across processes and hosts. Taken
    # and aged by the database's clock (a host whose clock runs ahead cannot see a live lease as
    # expired), and fenced by the holder's id: only the holder may store Zoom's answer or clear it.
    def take_refresh_lease(
        self, *, connection_id: int, token_generation: int, holder: uuid.UUID, seconds: float
    ) -> bool:
        rows = self.filter(pk=connection_id, token_generation=token_generation, status=ZoomConnection.Status.ACTIVE)
        return bool(claims.claim(rows, REFRESH_LEASE, holder=holder, seconds=seconds))

    def release_refresh_lease(
        self, *, connection_id: int, holder: uuid.UUID, failure: str = "", not_before: datetime | None = None
    ) -> bool:
        """Clear the lease if it is still `holder`'s; a lease taken over by another is left alone."""
        changes: dict = {"updated_at": timezone.now()}
        if failure:
            changes.update(consecutive_failures=F("consecutive_failures") + 1, last_error=failure[:300])
        if not_before is not None:
            changes["refresh_not_before"] = not_before
        return bool(claims.release(self.filter(pk=connection_id), REFRESH_LEASE, holder=holder, **changes))

    # The transitions that are conditional UPDATEs (fenced by generation and/or holder): a lost
    # race changes nothing, and the caller learns it from the False.
    def mark_needs_reconnect(
        self, *, connection_id: int, token_generation: int, holder: uuid.UUID, reason: str
    ) -> bool:
        """Zoom refused the refresh token: only on the generation sent and while `holder` still
        holds the lease (a holder whose lease was taken over marks nothing)."""
        now = timezone.now()
        return bool(
            claims.release(
                self.filter(pk=connection_id, token_generation=token_generation),
                REFRESH_LEASE,
                holder=holder,
                status=ZoomConnection.Status.NEEDS_RECONNECT,
                consecutive_failures=F("consecutive_failures") + 1,
                last_error=reason[:300],
                needs_reconnect_since=now,
                updated_at=now,
            )
        )

    def mark_token_rejected(self, *, connection_id: int, token_generation: int) -> bool:
        """Zoom refused this access token before its announced expiry: it expires now, only while it
        is still the same token (a concurrent refresh may already have replaced it)."""
        now = timezone.now()
        return bool(
            self.filter(
                pk=connection_id, token_generation=token_generation, token_source=ZoomConnection.TokenSource.LOCAL
            ).update(
                access_token_expires_at=now,
                last_error="Zoom rejected the access token before its expiry; refreshed.",
                updated_at=now,
            )
        )


class ZoomConnection(models.Model):
    """One Zoom user's grant to one Zoom app, held for one of the customer's users."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        NEEDS_RECONNECT = "needs_reconnect", "Needs reconnect"
        REVOKED = "revoked", "Revoked"

    class TokenSource(models.TextChoices):
        LOCAL = "local", "Kept by the broker"
        RECALL = "recall", "Kept by Recall (Recall-managed)"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="zoom_connections")
    app = models.ForeignKey(ZoomApp, on_delete=models.PROTECT, related_name="connections")
    zoom_user_id = models.CharField(max_length=64)
    zoom_account_id = models.CharField(max_length=64, blank=True)
    email = models.EmailField(blank=True)
    pmi = models.CharField("personal meeting ID", max_length=20, blank=True)
    scopes = models.TextField(blank=True)
    token_source = models.CharField(max_length=10, choices=TokenSource.choices, default=TokenSource.LOCAL)
    access_token = StrictEncryptedTextField(blank=True)
    refresh_token = StrictEncryptedTextField(blank=True)
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token_issued_at = models.DateTimeField(null=True, blank=True)
    # Bumped on every token write: tells a lost refresh race from a revoked grant.
    token_generation = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    is_service_account = models.BooleanField(
        default=False, help_text="Its ZAK signs bots into sign-in-required meetings when no user is named."
    )
    allow_join_tokens_for_others = models.BooleanField(
        "join tokens for other users' bots",
        default=False,
        help_text="The user allows bots launched by other users into meetings they host to get local-recording "
        "join tokens minted from this connection.",
    )
    allow_obf_for_others = models.BooleanField(
        "OBF for other users' bots",
        default=False,
        help_text="The user allows bots launched by other users to name this connection as an OBF candidate: "
        "such a bot is authorized by this user's OBF token while this user is in the meeting.",
    )
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    # A refresh in flight (a lease, not a row lock: Zoom may take ZOOM_REFRESH_TIMEOUT to answer).
    refresh_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Who holds that lease (a fence): a holder whose lease expired and was taken stores nothing.
    refresh_lease_holder = models.UUIDField(null=True, blank=True, editable=False)
    # Zoom asked for a pause (429 + Retry-After) on this connection's refreshes.
    refresh_not_before = models.DateTimeField(null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # When Zoom refused the refresh token (the overview lists who must reconnect, newest first).
    needs_reconnect_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=300, blank=True)
    # The callback secret: its hash authenticates Recall's GETs; the encrypted copy lets the
    # broker show the full callback URLs to staff and to the user again.
    callback_secret_hash = models.CharField(max_length=64, blank=True)
    callback_secret = StrictEncryptedTextField(blank=True)
    callback_secret_rotated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ZoomConnectionQuerySet.as_manager()

    class Meta:
        verbose_name = "Zoom connection"
        permissions = [("reveal_callback_urls", "Can see full callback URLs (with their secret)")]
        constraints = [
            models.UniqueConstraint(fields=["app", "zoom_user_id"], name="one_connection_per_app_and_zoom_user"),
            models.UniqueConstraint(
                fields=["is_service_account"],
                condition=Q(is_service_account=True),
                name="one_service_account",
                violation_error_message="Another connection is already the service account: unmark it first.",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "token_source", "access_token_expires_at"], name="conn_due_expiry"),
            models.Index(fields=["status", "token_source", "last_refreshed_at"], name="conn_due_keepalive"),
        ]

    def __str__(self) -> str:
        return f"{self.email or self.zoom_user_id} in {self.app}"

    def expires_within(self, delta: timedelta, *, now: datetime | None = None) -> bool:
        if not self.access_token or self.access_token_expires_at is None:
            return True
        return self.access_token_expires_at - (now or timezone.now()) < delta

    @property
    def is_usable(self) -> bool:
        return self.status == self.Status.ACTIVE

    def store_tokens(self, *, access_token: str, refresh_token: str, expires_in: int, scope: str) -> None:
        now = timezone.now()
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.access_token_expires_at = now + timedelta(seconds=expires_in)
        self.refresh_token_issued_at = now
        self.last_refreshed_at = now
        if scope:
            self.scopes = scope
        self.token_generation += 1
        self.activate()
        self._clear_refresh_lease()
        self.refresh_not_before = None
        self.needs_reconnect_since = None

    def wipe_tokens(self) -> None:
        self.access_token = ""
        self.refresh_token = ""
        self.access_token_expires_at = None
        self.token_generation += 1

    # The transitions of one row held by the caller (under its row lock): they change the instance,
    # the caller saves it. The ones above on the QuerySet are conditional UPDATEs instead.
    def activate(self) -> None:
        self.status = self.Status.ACTIVE
        self.revoked_at = None
        self.consecutive_failures = 0
        self.last_error = ""

    def revoke(self, *, reason: str = "") -> None:
        """Disconnected: no tokens, no refresh in flight, not the service account; the row stays."""
        self.wipe_tokens()
        self.status = self.Status.REVOKED
        self.revoked_at = timezone.now()
        self.is_service_account = False
        self.last_error = reason[:300]
        self._clear_refresh_lease()

    def _clear_refresh_lease(self) -> None:
        self.refresh_started_at = None
        self.refresh_lease_holder = None

    # --- callback secret -----------------------------------------------------------------
    def rotate_callback_secret(self) -> str:
        raw = secrets.token_urlsafe(32)  # 256 bits
        self.callback_secret = raw
        self.callback_secret_hash = secret_hash(raw)
        self.callback_secret_rotated_at = timezone.now()
        return raw

    def check_callback_secret(self, raw: str) -> bool:
        return secret_matches(raw, self.callback_secret_hash)

    def callback_url(self, kind: str, *, masked: bool = False, **extra: str) -> str:
        """A token URL for Recall: the connection and its secret ride in the query string.
        `masked` puts a placeholder where the secret goes, for pages shown by default."""
        secret = "********" if masked else self.callback_secret
        query = {"connection": str(self.public_id), "auth_token": secret, **extra}
        return public_url(reverse("zoomauth:token-callback", kwargs={"kind": kind}), query)

    @property
    def zak_share_key(self) -> str:
        """Concurrent ZAK callbacks share one Zoom call under this key (zoomauth.singleflight)."""
        return f"zak:{self.pk}"

    @property
    def access_token_callback_url(self) -> str:
        return self.callback_url("access-token")

    @property
    def zak_url(self) -> str:
        return self.callback_url("zak")


class CallbackGrantQuerySet(models.QuerySet):
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


class ZoomMeeting(models.Model):
    """Which connection hosts a meeting, learnt from meeting.created (for join tokens)."""

    meeting_id = models.CharField(max_length=20, unique=True)
    host_connection = models.ForeignKey(ZoomConnection, on_delete=models.CASCADE, related_name="hosted_meetings")
    topic = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.meeting_id


class CallbackLogQuerySet(models.QuerySet):
    def expired(self, *, now: datetime | None = None):
        return self.filter(created_at__lt=(now or timezone.now()) - settings.CALLBACK_LOG_RETENTION)


class CallbackLog(models.Model):
    """One token callback served (or refused). Never the token itself."""

    class Kind(models.TextChoices):
        ACCESS_TOKEN = "access-token", "Access token"
        ZAK = "zak", "ZAK"
        OBF = "obf", "OBF token"
        JOIN_TOKEN = "join-token", "Join token (local recording)"

    connection = models.ForeignKey(
        ZoomConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="callback_logs"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    meeting_id = models.CharField(max_length=20, blank=True)
    # The bot's credential the request came with (None: the connection's own secret).
    grant = models.ForeignKey(
        "CallbackGrant", null=True, blank=True, on_delete=models.SET_NULL, related_name="callback_logs"
    )
    status_code = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=200)
    latency_ms = models.PositiveIntegerField()
    zoom_calls = models.PositiveSmallIntegerField(default=0)
    signature_checked = models.BooleanField(default=False)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = CallbackLogQuerySet.as_manager()

    class Meta:
        verbose_name = "token callback"
        ordering = ("-created_at",)
        # A connection's last callback (the admin list shows it beside each connection).
        indexes = [models.Index(fields=["connection", "-created_at"], name="callback_by_connection")]

    def __str__(self) -> str:
        return f"{self.kind} {self.status_code}"


class CallbackHourStat(models.Model):
    """Token callbacks counted per hour, kind and latency bucket, as the audit writer writes them:
    what the admin overview reads, so that its figures cost a few hundred rows, not a scan of a
    day of callbacks. Pruned with the callbacks."""

    BUCKET_MS = 25
    LAST_BUCKET = 400  # 10 s and beyond

    hour = models.DateTimeField()
    kind = models.CharField(max_length=20, choices=CallbackLog.Kind.choices)
    latency_bucket = models.PositiveSmallIntegerField()
    answered = models.PositiveIntegerField(default=0)
    answered_200 = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "token callbacks per hour"
        constraints = [
            models.UniqueConstraint(fields=["hour", "kind", "latency_bucket"], name="one_stat_per_hour_kind_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.hour:%Y-%m-%d %H}h: {self.answered}"

    @classmethod
    def bucket_of(cls, latency_ms: int) -> int:
        return min(latency_ms // cls.BUCKET_MS, cls.LAST_BUCKET)


class ConnectSessionQuerySet(models.QuerySet):
    def for_token(self, raw: str):
        return self.filter(token_hash=secret_hash(raw))


class ConnectSession(models.Model):
    """A single-use link, made by the customer's backend, that takes one of its end users
    straight to Zoom's consent screen without a broker sign-in. Only the token's hash is kept."""

    LIFETIME = timedelta(minutes=30)

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connect_sessions")
    app = models.ForeignKey(ZoomApp, on_delete=models.CASCADE, related_name="connect_sessions")
    return_url = models.URLField(max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    objects = ConnectSessionQuerySet.as_manager()

    class Meta:
        verbose_name = "connect session"

    def __str__(self) -> str:
        return f"connect link for {self.user} ({self.app})"

    @classmethod
    def issue(cls, *, user, app: ZoomApp, return_url: str = "") -> tuple["ConnectSession", str]:
        raw = secrets.token_urlsafe(32)
        session = cls.objects.create(
            token_hash=secret_hash(raw),
            user=user,
            app=app,
            return_url=return_url,
            expires_at=timezone.now() + cls.LIFETIME,
        )
        return session, raw

    @staticmethod
    def url_for(raw: str) -> str:
        return public_url(reverse("zoomauth:connect-session", kwargs={"token": raw}))

    def claim(self) -> bool:
        """Mark the link used; False if it was used (or claimed concurrently) already."""
        return bool(ConnectSession.objects.filter(pk=self.pk, used_at__isnull=True).update(used_at=timezone.now()))


class MeetingActivityQuerySet(models.QuerySet):
    def stale(self, *, now: datetime | None = None):
        """Meetings nothing has been heard of for MEETING_ACTIVITY_RETENTION (the prune's set)."""
        return self.filter(last_event_at__lt=(now or timezone.now()) - settings.MEETING_ACTIVITY_RETENTION)


class MeetingActivity(models.Model):
    """A meeting as Zoom's meeting events for one app describe it: whether it runs, and how many
    people who are not connected users are in it (a count: nothing else is kept about them).
    Times are the events' own (Zoom's event_ts), so late and out-of-order events fall in place."""

    app = models.ForeignKey(ZoomApp, on_delete=models.CASCADE, related_name="meeting_activity")
    meeting_id = models.CharField(max_length=20)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Joins minus leaves of participants who are not connected users (below zero for a moment
    # when a leave arrives before its join).
    others_count = models.IntegerField(default=0)
    last_event_at = models.DateTimeField()

    objects = MeetingActivityQuerySet.as_manager()

    class Meta:
        verbose_name = "meeting activity"
        verbose_name_plural = "meeting activity"
        constraints = [models.UniqueConstraint(fields=["app", "meeting_id"], name="one_activity_per_app_meeting")]
        indexes = [models.Index(fields=["last_event_at"], name="activity_last_event")]

    def __str__(self) -> str:
        return f"meeting {self.meeting_id}"

    @property
    def is_running(self) -> bool:
        return self.started_at is not None and (self.ended_at is None or self.started_at > self.ended_at)

    @property
    def others_present(self) -> int:
        return max(self.others_count, 0) if self.is_running else 0

    def closed_by_end(self, at: datetime) -> bool:
        """An event from before the latest meeting.ended: that end closed what it says."""
        return self.ended_at is not None and at <= self.ended_at


class MeetingPresenceQuerySet(models.QuerySet):
    def present(self):
        return self.filter(joined_at__isnull=False).filter(Q(left_at__isnull=True) | Q(joined_at__gt=F("left_at")))


class MeetingPresence(models.Model):
    """A connected user in a meeting: the latest join and the latest leave by the events' own
    times (a meeting.ended counts as everyone's leave). In the meeting while the latest join is
    later than the latest leave, whatever order the events came in."""

    meeting = models.ForeignKey(MeetingActivity, on_delete=models.CASCADE, related_name="presences")
    connection = models.ForeignKey(ZoomConnection, on_delete=models.CASCADE, related_name="meeting_presences")
    joined_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)

    objects = MeetingPresenceQuerySet.as_manager()

    class Meta:
        verbose_name = "meeting presence"
        constraints = [
            models.UniqueConstraint(fields=["meeting", "connection"], name="one_presence_per_meeting_connection")
        ]

    def __str__(self) -> str:
        return f"{self.connection_id} in {self.meeting_id}"

    @property
    def is_present(self) -> bool:
        return self.joined_at is not None and (self.left_at is None or self.joined_at > self.left_at)
