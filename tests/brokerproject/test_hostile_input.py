"""Bodies and keys that used to answer 500: each now gets a clear 4xx or 503, and nothing is lost."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from cryptography.fernet import Fernet, MultiFernet
from django.test import Client
from encrypted_model_fields import fields as encrypted_fields

from brokerproject import jsonbody
from fakes.recall import standard_webhook_headers
from recallbots.models import Bot
from tests.conftest import WHSEC
from tests.webhooks.test_zoom_webhooks import post_event
from webhooks.models import ZoomWebhookDelivery

DEEP = b"[" * 100_000 + b"]" * 100_000


def signed_recall(settings, body: bytes) -> dict:
    return {
        f"HTTP_{k.upper().replace('-', '_')}": v
        for k, v in standard_webhook_headers(settings.RECALL_VERIFICATION_SECRET, body).items()
    }


def test_deeply_nested_json_is_a_clear_400_in_the_api(client, user):
    client.force_login(user)
    response = client.post("/api/bots/", DEEP, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


def test_deeply_nested_zoom_event_is_400(client, zoom_app):
    response = post_event(client, zoom_app, DEEP)
    assert response.status_code == 400 and b"nested too deeply" in response.content
    assert not ZoomWebhookDelivery.objects.exists()


def test_deeply_nested_recall_status_event_is_400(db, settings):
    settings.RECALL_VERIFICATION_SECRET = WHSEC
    response = Client().post(
        "/recall/webhooks/bot-status/", DEEP, content_type="application/json", **signed_recall(settings, DEEP)
    )
    assert response.status_code == 400


def test_a_signed_zoom_event_with_nul_is_stored_byte_for_byte(client, zoom_app):
    body = b'{"event": "meeting.created\\u0000", "payload": {"object": {"topic": "a\\u0000b"}}}'
    assert post_event(client, zoom_app, body).status_code == 200
    delivery = ZoomWebhookDelivery.objects.get()
    assert bytes(delivery.body) == body and delivery.event == "meeting.created"


def test_a_signed_recall_status_event_with_nul_in_the_bot_id_is_not_a_500(connection, settings):
    settings.RECALL_VERIFICATION_SECRET = WHSEC
    Bot.objects.create(user=connection.user, meeting_url="https://zoom.us/j/1", recall_id="rb_1")
    body = (
        b'{"event": "bot.joining_call", "data": {"data": {"code": "joining_call\\u0000", "sub_code": null,'
        b' "updated_at": "2026-11-24T10:00:00Z"}, "bot": {"id": "rb_1\\u0000"}}}'
    )
    response = Client().post(
        "/recall/webhooks/bot-status/", body, content_type="application/json", **signed_recall(settings, body)
    )
    assert response.status_code == 200
    assert Bot.objects.get().status_changes.get().code == "joining_call"


def test_nul_and_lone_surrogates_in_api_text_are_a_clear_400(client, user):
    client.force_login(user)
    for text in ('"\\u0000"', '"\\ud800"'):
        body = f'{{"meeting_url": {text}, "bot_name": "x"}}'
        response = client.post("/api/bots/", body, content_type="application/json")
        assert response.status_code == 400, response.content
        assert "NUL" in response.json()["detail"]


def test_loads_strips_only_what_postgresql_refuses():
    assert jsonbody.loads('{"a\\u0000": ["x\\ud800y", 1, null]}', text="strip") == {"a": ["xy", 1, None]}
    with pytest.raises(jsonbody.MalformedJSON):
        jsonbody.loads("[" * 65 + "]" * 65)
    assert jsonbody.loads("[" * 64 + "]" * 64) is not None


@pytest.mark.django_db(transaction=True)
def test_simultaneous_first_schema_requests_all_succeed(live_server, user):
    start = threading.Barrier(8)

    def fetch(_):
        start.wait()
        return requests.get(live_server.url + "/api/schema/", timeout=30).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(fetch, range(8)))
    assert statuses == [200] * 8


def test_a_wrong_encryption_key_answers_503_everywhere_but_health(client, staff, monkeypatch):
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200  # the canary is written under the right key
    monkeypatch.setattr(encrypted_fields, "CRYPTER", MultiFernet([Fernet(Fernet.generate_key())]))
    fresh = Client()  # a process started with the wrong key
    fresh.force_login(staff)
    for path in ("/api/connections/", "/admin/zoomauth/zoomconnection/", "/"):
        response = fresh.get(path)
        assert response.status_code == 503, path
        assert b"FIELD_ENCRYPTION_KEY" in response.content
    assert fresh.get("/healthz").status_code == 200
