"""Registering the Zoom app and users' credentials with the fake Recall, over real HTTP both ways."""

import pytest

from recallbots import recall, tasks
from recallbots.models import RecallCredential, RecallOAuthApp
from recallbots.services import (
    credential_create_customer_managed,
    credential_sync_status,
    recall_app_delete,
    recall_app_push_secrets,
    recall_app_register,
)
from tests.conftest import connect_via_fake_zoom, run_queued_tasks
from zoomauth.models import ZoomApp, ZoomConnection

# Every test here talks to the broker over HTTP (the fake Recall calls back into it).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("live_broker")]


def test_register_app_with_recall(recall_app, fake_recall):
    remote = fake_recall.apps[recall_app.recall_id]
    assert (remote["kind"], remote["client_id"], remote["webhook_secret"]) == (
        "user_level",
        "fake-client-id",
        "fake-webhook-secret-token",
    )
    assert (
        recall_app.webhook_url
        == f"{fake_recall.base_url}/us-east-1/api/v2/zoom-oauth-apps/{recall_app.recall_id}/webhook"
    )


def test_register_adopts_the_app_recall_already_has(zoom_app, fake_recall):
    existing = recall.RecallClient().create_zoom_oauth_app(
        kind="user_level", client_id=zoom_app.client_id, client_secret="old", webhook_secret="old"
    )
    app = recall_app_register(zoom_app=zoom_app)
    assert app.recall_id == existing["id"] and len(fake_recall.apps) == 1
    assert fake_recall.apps[app.recall_id]["webhook_secret"] == "fake-webhook-secret-token"


def test_register_without_a_secret_token_shows_recalls_reason(zoom_app, fake_recall):
    ZoomApp.objects.filter(pk=zoom_app.pk).update(webhook_secret="")
    zoom_app.refresh_from_db()
    with pytest.raises(recall.RecallError, match="webhook_secret: \\['This field is required.'\\]"):
        recall_app_register(zoom_app=zoom_app)
    assert not RecallOAuthApp.objects.exists()


def test_register_in_another_region_and_push_secrets_then_delete(zoom_app, fake_recall):
    app = recall_app_register(zoom_app=zoom_app, region="eu-central-1")
    assert app.base_url.endswith("/eu-central-1")
    ZoomApp.objects.filter(pk=zoom_app.pk).update(webhook_secret="rotated-token")
    app.refresh_from_db()
    recall_app_push_secrets(recall_app=app)
    assert fake_recall.apps[app.recall_id]["webhook_secret"] == "rotated-token"
    recall_app_delete(recall_app=app)
    assert app.recall_id not in fake_recall.apps and not RecallOAuthApp.objects.exists()


def test_customer_managed_credential_is_created_with_a_live_callback(recall_app, connection, fake_recall):
    credential = credential_create_customer_managed(connection=connection)
    assert credential.status == "healthy" and credential.mode == RecallCredential.Mode.CUSTOMER_MANAGED
    remote = fake_recall.credentials[credential.recall_id]
    assert remote["user_id"] == "zu_alice"
    gets = [g for g in fake_recall.token_gets if g["kind"] == "access_token"]
    assert gets and gets[-1]["status"] == 200 and gets[-1]["content_type"] == "text/plain; charset=utf-8"


def test_the_register_task_resolves_the_one_credential_per_user_conflict(recall_app, connection, fake_recall):
    first = credential_create_customer_managed(connection=connection)
    RecallCredential.objects.all().delete()  # the broker lost track of it; Recall still has it
    tasks.credential_create_customer_managed.run(connection.pk)
    second = RecallCredential.objects.get(connection=connection)
    assert second.recall_id != first.recall_id
    assert list(fake_recall.credentials) == [second.recall_id]


def test_disconnect_deletes_the_credential_in_recall(recall_app, connection, fake_recall, client):
    credential = credential_create_customer_managed(connection=connection)
    client.force_login(connection.user)
    client.post(f"/zoom/connections/{connection.public_id}/disconnect/")
    assert credential.recall_id in fake_recall.credentials  # the page did not wait on Recall
    run_queued_tasks("recall")  # a task on the recall queue deletes it
    assert credential.recall_id not in fake_recall.credentials
    assert not RecallCredential.objects.exists()


def test_firewall_refuses_localhost_callback_urls(recall_app, connection, settings):
    settings.PUBLIC_BASE_URL = "http://localhost:8000"
    with pytest.raises(recall.RecallFirewallError):
        credential_create_customer_managed(connection=connection)


def test_credential_status_is_kept_in_sync(recall_app, connection, fake_recall):
    credential = credential_create_customer_managed(connection=connection)
    fake_recall.credentials[credential.recall_id]["status"] = "unhealthy"
    assert tasks.credentials_sync_statuses.run() == 1  # what beat runs: one list call per app
    assert RecallCredential.objects.get().status == "unhealthy"
    fake_recall.credentials[credential.recall_id]["status"] = "healthy"
    credential_sync_status(credential=credential)  # the admin action, for one credential
    assert RecallCredential.objects.get().status == "healthy"


def test_recall_managed_connect_and_tokens_from_recall(zoom_app, user, client, fake_zoom, fake_recall):
    ZoomApp.objects.filter(pk=zoom_app.pk).update(credential_mode=ZoomApp.CredentialMode.RECALL_MANAGED)
    recall_app_register(zoom_app=zoom_app)
    client.force_login(user)
    response = connect_via_fake_zoom(client, fake_zoom)
    assert response.status_code == 200, response.content
    connection = ZoomConnection.objects.get()
    assert connection.token_source == ZoomConnection.TokenSource.RECALL
    assert connection.access_token == "" and connection.refresh_token == ""
    credential = RecallCredential.objects.get()
    assert credential.mode == RecallCredential.Mode.RECALL_MANAGED
    assert fake_recall.credentials[credential.recall_id]["user_id"] == "zu_alice"
    client.logout()
    from urllib.parse import urlparse

    url = urlparse(connection.zak_url)
    zak = client.get(f"{url.path}?{url.query}")
    assert zak.status_code == 200 and zak.content.startswith(b"zak.")
    assert fake_zoom.counters["token_exchange"] == 1  # Recall did the exchange, not the broker
