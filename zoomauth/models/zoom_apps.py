import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.db import models
from django.urls import reverse

from brokerproject.crypto import StrictEncryptedTextField


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
