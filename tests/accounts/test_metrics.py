"""/metrics: behind its bearer token, counting what was sent."""

import re

from django.test import Client

from zoomauth.models import ZoomConnection


def value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def scrape(settings) -> str:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_metrics_need_the_token_setting_and_the_token(db, settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 404
    settings.METRICS_TOKEN = "s3cret-metrics"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_metrics_count_callbacks_zoom_calls_and_connections(client, connection, settings, fake_zoom):
    settings.METRICS_TOKEN = "s3cret-metrics"
    client.logout()
    before = scrape(settings)
    zak = connection.zak_url.replace("https://broker.example.test", "")
    for _ in range(3):
        assert client.get(zak).status_code == 200
    assert client.get(zak.replace(connection.callback_secret, "wrong")).status_code == 401
    after = scrape(settings)

    def grew(sample: str) -> float:
        return value(after, sample) - value(before, sample)

    assert grew('broker_token_callbacks_total{kind="zak",status="200"}') == 3
    assert grew('broker_token_callbacks_total{kind="zak",status="401"}') == 1
    assert grew('broker_token_callback_seconds_count{kind="zak"}') == 4
    assert grew('broker_zoom_calls_total{endpoint="/v2/users/me/token?type=zak",outcome="ok"}') == 1  # shared
    assert value(after, 'broker_connections{status="active"}') == ZoomConnection.objects.filter(status="active").count()
    assert value(after, "broker_webhook_forward_backlog") == 0
    assert connection.callback_secret not in after
