import time

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import User


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield


@pytest.fixture
def user(db):
    return User.objects.create_user(username="alice", email="alice@example.com", password="correct horse battery")


@pytest.fixture
def staff(db):
    return User.objects.create_superuser(username="staff", email="staff@example.com", password="correct horse battery")


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def one_window():
    """Per-minute limits count in fixed windows (brokerproject/throttling.py): a test that counts up
    to one starts with at least 10 s of its window left, so its requests are all counted together
    (one that straddled a minute's end saw a fresh count, and no 429, under load)."""
    left = 60 - time.time() % 60
    if left < 10:
        time.sleep(left + 0.05)


def run_queued_tasks(*queues: str) -> int:
    """A worker's turn, in this process: every message waiting on the queues (countdowns
    included) is taken off and its task run once, eagerly. Returns how many ran."""
    import base64
    import importlib
    import json

    from brokerproject.celery import app
    from brokerproject.redis_client import shared_redis

    client = shared_redis()
    ran = 0
    for queue in queues:
        while (raw := client.rpop(queue)) is not None:  # kombu pushes left, workers pop right
            message = json.loads(raw)
            args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            name = message["headers"]["task"]
            importlib.import_module(name.rsplit(".", 1)[0])  # registers the task if not yet imported
            app.tasks[name].apply(args=args, kwargs=kwargs)
            ran += 1
    return ran


# --- fakes over real HTTP ---------------------------------------------------------------------

CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "fake-client-secret"
WEBHOOK_SECRET = "fake-webhook-secret-token"
WHSEC = "whsec_" + __import__("base64").b64encode(b"recall-verification-secret-32by").decode()


@pytest.fixture(scope="session")
def _fake_zoom_server():
    from fakes.zoom import FakeZoom

    server = FakeZoom().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _fake_recall_server(_fake_zoom_server):
    from fakes.recall import FakeRecall

    server = FakeRecall(zoom_base_url=_fake_zoom_server.base_url).start()
    yield server
    server.stop()


@pytest.fixture
def fake_zoom(_fake_zoom_server, settings):
    _fake_zoom_server.reset()
    settings.ZOOM_OAUTH_BASE_URL = _fake_zoom_server.base_url
    settings.ZOOM_API_BASE_URL = _fake_zoom_server.base_url + "/v2"
    return _fake_zoom_server


@pytest.fixture
def fake_recall(_fake_recall_server, fake_zoom, settings):
    _fake_recall_server.reset()
    base = _fake_recall_server.base_url
    settings.RECALL_REGIONS = {
        region: f"{base}/{region}" for region in ("us-west-2", "us-east-1", "api", "eu-central-1", "ap-northeast-1")
    }
    settings.RECALL_API_BASE_URL = f"{base}/us-east-1"
    settings.RECALL_API_KEY = "test-recall-key"
    return _fake_recall_server


@pytest.fixture
def zoom_app(db, fake_zoom, settings):
    from zoomauth.models import ZoomApp

    app = ZoomApp.objects.create(
        name="Notetaker", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET
    )
    fake_zoom.add_app(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[app.redirect_uri])
    fake_zoom.add_user(id="zu_alice", email="alice@zoom.example", pmi="5551234567")
    fake_zoom.add_user(id="zu_bob", email="bob@zoom.example", pmi="5559876543")
    return app


def consent_at(fake_zoom, authorize_url: str, zoom_user_id: str) -> str:
    """The user consents at the fake Zoom to what the broker's redirect to Zoom's authorize page
    asks (client, redirect URI, state, PKCE challenge); returns Zoom's redirect back."""
    from urllib.parse import parse_qs, urlparse

    query = {k: v[0] for k, v in parse_qs(urlparse(authorize_url).query).items()}
    return fake_zoom.consent(
        client_id=query["client_id"],
        user_id=zoom_user_id,
        redirect_uri=query["redirect_uri"],
        state=query["state"],
        code_challenge=query["code_challenge"],
    )


def connect_via_fake_zoom(client, fake_zoom, zoom_user_id: str = "zu_alice", app=None, start: str = ""):
    """Run the real connect flow: /zoom/connect/ (or `start`, a connect link's path) → fake Zoom
    consent → /zoom/callback/."""
    from urllib.parse import urlparse

    url = start or "/zoom/connect/" + (f"?app={app.public_id}" if app else "")
    response = client.get(url)
    if start:  # a connect link's page; the user's click is a POST
        assert response.status_code == 200, response.content
        response = client.post(url)
    assert response.status_code == 302, response.content
    callback = urlparse(consent_at(fake_zoom, response["Location"], zoom_user_id))
    return client.get(callback.path + "?" + callback.query)


@pytest.fixture
def connection(zoom_app, user, client, fake_zoom):
    from zoomauth.models import ZoomConnection

    client.force_login(user)
    response = connect_via_fake_zoom(client, fake_zoom)
    assert response.status_code == 200, response.content
    return ZoomConnection.objects.get(zoom_user_id="zu_alice")


@pytest.fixture
def live_broker(live_server, settings, fake_recall):
    """The broker served over real HTTP on 127.0.0.1, where the fake Recall can call it back."""
    settings.PUBLIC_BASE_URL = live_server.url
    settings.RECALL_VERIFICATION_SECRET = WHSEC
    fake_recall.configure(
        status_webhook_url=live_server.url + "/recall/webhooks/bot-status/",
        verification_secret=WHSEC,
        step_seconds=0.1,
    )
    yield live_server
    # Before the database is emptied: a status webhook still on its way would hold the tables
    # the flush must lock (a deadlock, and the next test meets this one's rows).
    fake_recall.quiesce()
