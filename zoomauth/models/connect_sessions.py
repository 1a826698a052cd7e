import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from brokerproject.crypto import secret_hash

from .zoom_apps import ZoomApp, public_url


class ConnectSessionQuerySet(models.QuerySet["ConnectSession"]):
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
