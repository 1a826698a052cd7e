import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from brokerproject.crypto import EncryptionKeyError, StrictEncryptedTextField, secret_hash


class User(AbstractUser):
    """The customer's users and staff. Custom from the first migration so it can grow.

    End users made by the customer's backend (connect sessions) carry its id for them in
    `external_user_id` and have no usable password: they never sign in to the broker."""

    external_user_id = models.CharField(max_length=255, unique=True, null=True, blank=True)

    class Meta:
        db_table = "accounts_user"

    @classmethod
    def for_external_id(cls, external_user_id: str, *, email: str = "") -> "User":
        """The end user with this id of the customer's, made on first use."""
        user = cls.objects.filter(external_user_id=external_user_id).first()
        if user is None:
            username = "ext_" + hashlib.sha256(external_user_id.encode()).hexdigest()[:40]
            user, created = cls.objects.get_or_create(
                external_user_id=external_user_id, defaults={"username": username, "email": email}
            )
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
        if email and user.email != email:
            user.email = email
            user.save(update_fields=["email"])
        return user


hash_token = secret_hash  # API keys are 256-bit random: brokerproject.crypto's one secret hash


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def live(self):
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A key for the customer's backend. Only its SHA-256 is stored; the key is shown once."""

    PREFIX = "ztb_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What uses this key, e.g. 'billing backend'.")
    key_prefix = models.CharField(max_length=16, editable=False, help_text="First characters, to recognise a key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @classmethod
    def issue(cls, *, user, name: str) -> tuple["ApiToken", str]:
        raw = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, key_prefix=raw[:10], key_hash=hash_token(raw))
        return token, raw

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


class EncryptionCanary(models.Model):
    """One row holding a known value, encrypted: proves FIELD_ENCRYPTION_KEY reads the data."""

    PLAINTEXT = "zoom-token-broker-encryption-canary-v1"

    value = StrictEncryptedTextField()

    def __str__(self) -> str:
        return "encryption canary"

    @classmethod
    def verify_key(cls) -> tuple[bool, str]:
        """Write the canary on first use, then prove that the configured keys can read it."""
        try:
            canary, created = cls.objects.get_or_create(pk=1, defaults={"value": cls.PLAINTEXT})
        except EncryptionKeyError:
            return False, "the encryption canary cannot be decrypted: FIELD_ENCRYPTION_KEY is wrong"
        if canary.value != cls.PLAINTEXT:
            return False, "the encryption canary does not match: FIELD_ENCRYPTION_KEY is wrong"
        return True, "created" if created else "ok"


class Heartbeat(models.Model):
    """Last time a periodic task ran, per name. /readyz reads the beat heartbeat's age."""

    name = models.CharField(max_length=50, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"


def beat_heartbeat_check() -> tuple[bool, str]:
    """/readyz: beat (and a worker to run its heartbeat task) is alive when the heartbeat is young."""
    beat = Heartbeat.objects.filter(name="beat").first()
    if beat is None:
        return False, "no heartbeat yet: is celery beat (and a worker) running?"
    age = timezone.now() - beat.beat_at
    return age <= settings.BEAT_HEARTBEAT_MAX_AGE, f"last heartbeat {int(age.total_seconds())}s ago"
