"""The Zoom OAuth apps in Recall: register (or adopt), push secrets, delete; and the forward
target Recall re-verifies Zoom's events at. (Not `apps.py`: that is Django's AppConfig module.)"""

from zoomauth.models import ZoomApp

from . import recall
from .models import RecallCredential, RecallOAuthApp


def recall_client(*, base_url: str | None = None) -> recall.RecallClient:
    return recall.RecallClient(base_url=base_url)


def recall_app_register(*, zoom_app: ZoomApp, region: str | None = None) -> RecallOAuthApp:
    """Create the app in Recall (or adopt the one Recall already has for this client id)."""
    client = recall_client(base_url=recall.base_url_for(region) if region else None)
    existing = RecallOAuthApp.objects.filter(zoom_app=zoom_app).first()
    if existing is not None:
        return existing
    found = client.list_zoom_oauth_apps(client_id=zoom_app.client_id)
    if found:
        body = found[0]
        client.update_zoom_oauth_app(
            body["id"], client_secret=zoom_app.client_secret or "a", webhook_secret=zoom_app.webhook_secret
        )
    else:
        body = client.create_zoom_oauth_app(
            kind=zoom_app.kind,
            client_id=zoom_app.client_id,
            # Recall ignores the secret for customer-managed OAuth, but wants a value.
            client_secret=zoom_app.client_secret or "a",
            webhook_secret=zoom_app.webhook_secret,
        )
    return RecallOAuthApp.objects.create(zoom_app=zoom_app, recall_id=body["id"], base_url=client.base_url)


def recall_forward_targets(zoom_app: ZoomApp) -> list[str]:
    """webhooks' forward-target provider: Recall re-verifies Zoom's events at the app's URL."""
    recall_app = RecallOAuthApp.objects.filter(zoom_app=zoom_app).only("recall_id", "base_url").first()
    return [recall_app.webhook_url] if recall_app is not None else []


def recall_app_push_secrets(*, recall_app: RecallOAuthApp) -> None:
    client = recall_client(base_url=recall_app.base_url)
    zoom_app = recall_app.zoom_app
    body = client.update_zoom_oauth_app(
        recall_app.recall_id, client_secret=zoom_app.client_secret or "a", webhook_secret=zoom_app.webhook_secret
    )
    recall_app.webhook_last_validation_at = recall.parse_time(body.get("webhook_last_validation"))
    recall_app.save(update_fields=["webhook_last_validation_at", "updated_at"])


def recall_app_delete(*, recall_app: RecallOAuthApp) -> None:
    try:
        recall_client(base_url=recall_app.base_url).delete_zoom_oauth_app(recall_app.recall_id)
    except recall.RecallNotFoundError:
        pass
    RecallCredential.objects.filter(recall_app=recall_app).delete()
    recall_app.delete()
