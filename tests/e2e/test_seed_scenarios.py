"""One scenario per seed document, end to end: gunicorn, Celery worker and beat, PostgreSQL,
Redis, the fake Zoom and the fake Recall, each asserting what the fakes observed."""

import hashlib
import json
import re
import time
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from accounts.models import ApiToken, User
from fakes.zoom import send_webhook
from recallbots import recall
from recallbots.models import Bot, RecallCredential, RecallOAuthApp
from tests.conftest import WEBHOOK_SECRET
from zoomauth.models import ZoomConnection

from .conftest import Browserless, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PASSWORD = "correct horse battery staple"


def person(broker, username: str = "alice", *, staff: bool = False) -> Browserless:
    User.objects.create_user(username=username, password=PASSWORD, is_staff=staff, is_superuser=staff)
    browser = Browserless(broker.url)
    browser.sign_in(username, PASSWORD)
    return browser


def connected(broker, fake_zoom, zoom_user_id: str = "zu_alice", username: str = "alice") -> ZoomConnection:
    browser = person(broker, username)
    result = browser.connect_zoom(zoom_user_id)
    assert result.status_code == 200 and "Zoom connected" in result.text
    return ZoomConnection.objects.get(zoom_user_id=zoom_user_id)


def api_launch(broker, user, payload: dict) -> Bot:
    _, key = ApiToken.issue(user=user, name="backend")
    response = requests.post(
        broker.url + "/api/bots/", json=payload, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert response.status_code == 201, response.text
    return Bot.objects.get(public_id=response.json()["id"])


def wait_for_bot(bot: Bot, *codes: str, timeout: float = 40) -> Bot:
    def reached():
        bot.refresh_from_db()
        return bot.status in codes

    wait_for(reached, timeout=timeout)
    return bot


def introspect(fake_zoom, kind: str, token: str, meeting_id: str = "") -> dict:
    return requests.post(
        fake_zoom.base_url + "/_control/introspect",
        json={"kind": kind, "token": token, "meeting_id": meeting_id, "consume": False},
        timeout=5,
    ).json()


def test_seed_000_join_token_from_the_hosts_connection(e2e):
    broker, fake_zoom, fake_recall, app = e2e
    connection = connected(broker, fake_zoom)
    fake_zoom.add_meeting(id="85000000000", host_id="zu_alice")

    bot = api_launch(
        broker,
        connection.user,
        {
            "meeting_url": "https://zoom.us/j/85000000000",
            "connection": str(connection.public_id),
            "token_kinds": ["join_token"],
        },
    )
    bot = wait_for_bot(bot, "done", "fatal")
    assert bot.status == "done"
    remote = fake_recall.bots[bot.recall_id]
    assert remote["observed"]["join_token"]["status"] == 200
    assert [c["code"] for c in remote["status_changes"]][:2] == ["joining_call", "in_call_recording"]
    assert fake_zoom.counters["join_token"] == 1

    unknown = requests.get(connection.callback_url("join-token", meeting_id="89999999999"), timeout=10)
    assert unknown.status_code == 404
    assert unknown.text == "Zoom says this meeting does not exist."


def test_seed_001_app_registered_and_webhooks_reach_recall_byte_for_byte(e2e):
    broker, fake_zoom, fake_recall, app = e2e
    staff = person(broker, "staff", staff=True)
    response = staff.post_form("/admin/recallbots/recalloauthapp/add/", {"zoom_app": app.pk, "region": ""})
    assert response.status_code == 200 and "Registered with Recall" in response.text
    recall_app = RecallOAuthApp.objects.get()
    assert fake_recall.apps[recall_app.recall_id]["webhook_secret"] == WEBHOOK_SECRET

    body = (
        b'{"event":"meeting.created","event_ts":1732440000999,"payload":{"object":{"id":85000000001,'
        b'"host_id":"zu_alice","topic":"caf\xc3\xa9 \xf0\x9f\x8e\x89"}}  }'
    )
    status, _ = send_webhook(url=app.webhook_url, secret=WEBHOOK_SECRET, body=body)
    assert status == 200
    receipt = wait_for(lambda: fake_recall.webhook_receipts and fake_recall.webhook_receipts[-1])
    assert receipt["sha256"] == hashlib.sha256(body).hexdigest()
    assert receipt["signature_valid"] is True and receipt["timestamp"]

    validation = json.dumps({"event": "endpoint.url_validation", "payload": {"plainToken": "abc123"}}).encode()
    status, text = send_webhook(url=app.webhook_url, secret=WEBHOOK_SECRET, body=validation)
    assert status == 200 and json.loads(text)["plainToken"] == "abc123"


def test_seed_002_sign_in_required_meeting_with_the_service_accounts_zak(e2e):
    broker, fake_zoom, fake_recall, app = e2e
    service = connected(broker, fake_zoom, "zu_service", "service")
    ZoomConnection.objects.filter(pk=service.pk).update(is_service_account=True)
    fake_zoom.add_user(id="zu_host", email="host@elsewhere.example")
    fake_zoom.add_meeting(id="85000000002", host_id="zu_host", requires_sign_in=True)
    customer = User.objects.create_user(username="customer")

    bot = api_launch(
        broker,
        customer,
        {"meeting_url": "https://zoom.us/j/85000000002", "token_kinds": ["zak"], "zak_from_service_account": True},
    )
    bot = wait_for_bot(bot, "done", "fatal")
    assert bot.status == "done", bot.sub_code
    assert fake_recall.bots[bot.recall_id]["observed"]["zak"]["status"] == 200
    assert fake_zoom.counters["zak"] == 1


def test_seed_003_signed_in_user_launches_an_obf_bot_that_joins_after_them(e2e):
    broker, fake_zoom, fake_recall, app = e2e
    browser = person(broker)
    assert "Zoom connected" in browser.connect_zoom("zu_alice").text
    fake_zoom.add_meeting(id="85000000003", host_id="zu_alice")

    response = browser.post_form(
        "/launch/",
        {
            "meeting_url": "https://us05web.zoom.us/j/85000000003?pwd=x",
            "connection": ZoomConnection.objects.get().pk,
            "token_kinds": "obf",
            "bot_name": "Notes",
        },
    )
    assert response.status_code == 200 and "Bot launched." in response.text
    bot = wait_for_bot(Bot.objects.get(), "in_waiting_room")
    fake_zoom.join("85000000003", "zu_alice")
    bot = wait_for_bot(bot, "done", "fatal")
    assert list(bot.status_changes.values_list("code", flat=True)) == [
        "joining_call",
        "in_waiting_room",
        "in_call_recording",
        "call_ended",
        "done",
    ]
    assert ">done<" in browser.http.get(f"{broker.url}/bots/{bot.public_id}/", timeout=10).text


def test_seed_004_customer_managed_credential_and_tokens_across_a_refresh(e2e):
    broker, fake_zoom, fake_recall, app = e2e
    from recallbots.services import recall_app_register

    recall_app_register(zoom_app=app)
    connection = connected(broker, fake_zoom)
    # The worker registers the credential; Recall calls the access-token URL during the POST.
    credential = wait_for(lambda: RecallCredential.objects.filter(connection=connection).first(), timeout=30)
    remote = fake_recall.credentials[credential.recall_id]
    assert remote["user_id"] == "zu_alice" and remote["status"] == "healthy"

    client = recall.RecallClient()
    first = client.credential_access_token(credential.recall_id)
    assert introspect(fake_zoom, "access_token", first.token)["seconds_left"] >= 120

    # An hour later: the stored token has 60 s left. Recall's next call gets a refreshed one.
    requests.post(
        fake_zoom.base_url + "/_control/expire-access-tokens", json={"user_id": "zu_alice", "seconds_left": 60}
    )
    ZoomConnection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() + timedelta(seconds=60)
    )
    second = client.credential_access_token(credential.recall_id)
    assert second.token != first.token
    assert introspect(fake_zoom, "access_token", second.token)["seconds_left"] >= 120
    assert fake_zoom.counters["refresh_success"] == 1

    # Beat refreshes on its own when a token nears expiry, without any callback.
    ZoomConnection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() + timedelta(seconds=90)
    )
    wait_for(lambda: fake_zoom.counters["refresh_success"] == 2, timeout=30)
    # Zoom has answered; the worker stores the answer a moment later.
    wait_for(
        lambda: ZoomConnection.objects.filter(
            pk=connection.pk, access_token_expires_at__gt=timezone.now() + timedelta(minutes=50)
        ).exists(),
        timeout=10,
    )
    third = client.credential_access_token(credential.recall_id)
    assert introspect(fake_zoom, "access_token", third.token)["seconds_left"] >= 120
    assert fake_zoom.counters["invalid_grant"] == 0


def test_web_logs_mask_secrets_and_write_one_line_per_callback(e2e):
    broker, fake_zoom, fake_recall, app = e2e
    before = len(broker.log("web"))
    connection = connected(broker, fake_zoom)  # the OAuth redirect carries code and state
    assert requests.get(connection.zak_url, timeout=10).status_code == 200
    assert requests.get(connection.zak_url.replace(connection.callback_secret, "wrong"), timeout=10).status_code == 401

    def callback_lines() -> list[str]:
        return [line for line in broker.log("web")[before:].splitlines() if 'msg="token callback"' in line]

    # A callback's line is written once its answer is sent (the response's close()), so the second
    # may be written first, and either a moment after the client has its answer.
    wait_for(lambda: len(callback_lines()) >= 2, timeout=10)
    time.sleep(0.5)  # and no third line follows
    log = broker.log("web")[before:]
    assert connection.callback_secret not in log
    assert "code=***" in log and "state=***" in log  # gunicorn's access lines, masked
    callbacks = callback_lines()
    assert len(callbacks) == 2  # one line per callback: its own, not gunicorn's or django.request's too
    assert sorted(re.search(r"kind=zak status=(\d+)", line).group(1) for line in callbacks) == ["200", "401"]
    assert "/recall/callbacks/" not in log and "Unauthorized" not in log


def metric(text: str, name: str, **labels: str) -> float:
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_every_callback_across_gunicorn_workers(e2e):
    from .conftest import METRICS_TOKEN

    broker, fake_zoom, fake_recall, app = e2e
    connection = connected(broker, fake_zoom)
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert requests.get(broker.url + "/metrics", timeout=10).status_code == 401
    before = requests.get(broker.url + "/metrics", headers=auth, timeout=10).text
    for _ in range(40):  # new connections each time: both workers answer some
        response = requests.get(connection.access_token_callback_url, timeout=10, headers={"Connection": "close"})
        assert response.status_code == 200
    for _ in range(3):
        requests.get(connection.zak_url.replace(connection.callback_secret, "wrong"), timeout=10)
    after = requests.get(broker.url + "/metrics", headers=auth, timeout=10).text
    ok = metric(after, "broker_token_callbacks_total", kind="access-token", status="200") - metric(
        before, "broker_token_callbacks_total", kind="access-token", status="200"
    )
    refused = metric(after, "broker_token_callbacks_total", kind="zak", status="401") - metric(
        before, "broker_token_callbacks_total", kind="zak", status="401"
    )
    assert (ok, refused) == (40.0, 3.0)
    assert metric(after, "broker_connections", status="active") == 1.0
    assert len(list((broker.log_dir / "metrics").glob("counter_*.db"))) >= 2  # both workers wrote counters
