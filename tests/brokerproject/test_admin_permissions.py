"""Every admin page a view-only staff member can open, for one row of every registered model
holding every kind of secret the broker keeps: no secret value is in the HTML."""

import json
from datetime import timedelta

from django.contrib import admin
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.models import ApiToken
from recallbots.models import Bot, RecallCredential, RecallOAuthApp
from tests.conftest import CLIENT_SECRET, WEBHOOK_SECRET
from tests.staff import staff_with
from webhooks.models import (
    Event,
    EventDelivery,
    EventEndpoint,
    ExtraForwardTarget,
    WebhookRejection,
    ZoomWebhookDelivery,
)
from zoomauth.models import CallbackLog, ZoomMeeting
from zoomauth.services import callback_grant_issue

PROJECT_APPS = ("accounts", "zoomauth", "recallbots", "webhooks")


def every_view_permission() -> list[str]:
    return [
        f"{p.content_type.app_label}.{p.codename}"
        for p in Permission.objects.filter(codename__startswith="view_").select_related("content_type")
    ]


def test_a_viewer_sees_no_secret_on_any_admin_page(client, connection):
    grant, grant_secret = callback_grant_issue(
        connection=connection, kinds=["zak"], meeting_id="1", holder="bot:x", until=timezone.now() + timedelta(hours=1)
    )
    endpoint = EventEndpoint.objects.create(url="https://backend.example.com/hooks", secret=EventEndpoint.new_secret())
    token, api_key = ApiToken.issue(user=connection.user, name="backend")
    recall_app = RecallOAuthApp.objects.create(
        zoom_app=connection.app, recall_id="app_1", base_url="https://recall.example.com"
    )
    RecallCredential.objects.create(
        connection=connection, recall_app=recall_app, recall_id="cred_1", mode="customer_managed"
    )
    queued = json.dumps({"zoom": {"zak_url": grant.callback_url("zak", grant_secret)}})
    Bot.objects.create(
        user=connection.user, connection=connection, meeting_url="https://zoom.us/j/1", queued_payload=queued
    )
    event = Event.objects.create(type=Event.Type.CONNECTION_CONNECTED, connection=connection, data={"x": 1})
    EventDelivery.objects.create(event=event, endpoint=endpoint)
    ZoomWebhookDelivery.objects.create(
        app=connection.app,
        body=b'{"event": "meeting.created"}',
        body_sha256="0" * 64,
        zm_request_timestamp="1700000000",
        zm_signature="v0=" + "f" * 64,
    )
    WebhookRejection.objects.create(app=connection.app, reason="bad signature")
    ExtraForwardTarget.objects.create(app=connection.app, url="https://copy.example.com/")
    ZoomMeeting.objects.create(meeting_id="1", host_connection=connection)
    CallbackLog.objects.create(
        connection=connection, grant=grant, kind="zak", status_code=200, outcome="ok", latency_ms=1
    )
    secrets = {
        "client secret": CLIENT_SECRET,
        "Zoom's Secret Token": WEBHOOK_SECRET,
        "access token": connection.access_token,
        "refresh token": connection.refresh_token,
        "callback secret": connection.callback_secret,
        "bot grant secret": grant_secret,
        "endpoint secret": endpoint.secret,
        "API key": api_key,
        "API key hash": token.key_hash,
        "Zoom signature": "f" * 64,
    }
    assert all(secrets.values())

    client.force_login(staff_with(*every_view_permission(), username="viewer"))
    with_a_row = set()
    for model in admin.site._registry:
        changelist = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        urls = [changelist] + [
            f"{changelist}{pk}/change/" for pk in model._default_manager.values_list("pk", flat=True)
        ]
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
            html = response.content.decode()
            shown = [name for name, value in secrets.items() if value in html]
            assert not shown, f"{url} shows the {', '.join(shown)}"
        if len(urls) > 1:
            with_a_row.add(model._meta.label)
    ours = {m._meta.label for m in admin.site._registry if m._meta.app_label in PROJECT_APPS}
    assert ours <= with_a_row, ours - with_a_row  # every page of the project's own models was read
