from datetime import timedelta

from django.utils import timezone

from accounts.models import Heartbeat
from accounts.tasks import heartbeat_record


def test_healthz_is_alive(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_not_ready_without_a_beat_heartbeat(client, db):
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] and checks["broker"]["ok"] and checks["encryption"]["ok"]
    assert checks["beat"]["ok"] is False


def test_readyz_is_ready_after_a_heartbeat(client, db):
    heartbeat_record()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "ready"


def test_readyz_reports_a_stale_heartbeat(client, db):
    Heartbeat.objects.create(name="beat", beat_at=timezone.now() - timedelta(minutes=10))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert (
        "600s ago" in response.json()["checks"]["beat"]["detail"]
        or "ago" in response.json()["checks"]["beat"]["detail"]
    )


def test_readyz_reports_an_unreachable_broker(client, db, settings):
    from brokerproject.celery import app

    heartbeat_record()
    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/readyz")
    finally:
        app.conf.broker_url = original
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
