"""What the broker registered at Recall: its Zoom apps and its users' Zoom credentials."""

from django.db import models

from zoomauth.models import ZoomApp, ZoomConnection


class RecallOAuthApp(models.Model):
    """A Zoom app as registered with Recall (POST /api/v2/zoom-oauth-apps/)."""

    zoom_app = models.OneToOneField(ZoomApp, on_delete=models.PROTECT, related_name="recall_app")
    recall_id = models.CharField(max_length=64, unique=True)
    base_url = models.URLField(help_text="The Recall region the app was created in.")
    webhook_last_validation_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Recall Zoom OAuth app"

    def __str__(self) -> str:
        return f"{self.zoom_app} in Recall"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/api/v2/zoom-oauth-apps/{self.recall_id}/webhook"


class RecallCredential(models.Model):
    """A user's Zoom credential in Recall (POST /api/v2/zoom-oauth-credentials/)."""

    class Mode(models.TextChoices):
        CUSTOMER_MANAGED = "customer_managed", "Customer-managed"
        RECALL_MANAGED = "recall_managed", "Recall-managed"

    class Status(models.TextChoices):
        HEALTHY = "healthy", "Healthy"
        UNHEALTHY = "unhealthy", "Unhealthy"
        UNKNOWN = "unknown", "Unknown"

    connection = models.OneToOneField(ZoomConnection, on_delete=models.CASCADE, related_name="recall_credential")
    recall_app = models.ForeignKey(RecallOAuthApp, on_delete=models.PROTECT, related_name="credentials")
    recall_id = models.CharField(max_length=64, unique=True)
    mode = models.CharField(max_length=20, choices=Mode.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UNKNOWN)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "Recall Zoom credential"

    def __str__(self) -> str:
        return f"{self.connection} ({self.get_mode_display()})"
