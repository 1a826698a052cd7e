import secrets
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Subquery
from django.urls import reverse
from django.utils import timezone

from brokerproject import claims
from brokerproject.crypto import StrictEncryptedTextField, secret_hash, secret_matches

from .zoom_apps import ZoomApp, public_url

# A refresh's lease: taken when it starts (by the database's clock) and free once older than the
# refresh's deadline plus a margin; only its holder stores Zoom's answer or frees it.
REFRESH_LEASE = claims.Lease(field="refresh_started_at", holder_field="refresh_lease_holder", from_start=True)


class ZoomConnectionQuerySet(models.QuerySet["ZoomConnection"]):
    def active(self):
        return self.filter(status=ZoomConnection.Status.ACTIVE)

    def obf_authorizers_for(self, launcher_id: int):
        """Connections whose user an OBF bot of `launcher_id` may join on behalf of: active, and
        either allowing it for others or the launcher's own user's."""
        launcher_user = ZoomConnection.objects.filter(pk=launcher_id).values("user_id")
        return self.active().filter(Q(allow_obf_for_others=True) | Q(user_id=Subquery(launcher_user)))

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
