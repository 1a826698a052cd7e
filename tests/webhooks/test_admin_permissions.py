"""The webhooks admin's actions and pages, as a staff account with only the view permission
would use them (forged POSTs included), then with the change permission."""

import pytest

from tests.staff import offered_actions, post_action, staff_with
from webhooks.models import Event, EventDelivery, EventEndpoint, ZoomWebhookDelivery

ENDPOINTS = "/admin/webhooks/eventendpoint/"
EVENT_DELIVERIES = "/admin/webhooks/eventdelivery/"
ZOOM_DELIVERIES = "/admin/webhooks/zoomwebhookdelivery/"


@pytest.fixture
def endpoint(db):
    return EventEndpoint.objects.create(url="https://backend.example.com/hooks", secret=EventEndpoint.new_secret())


@pytest.fixture
def failed_event_delivery(endpoint):
    event = Event.objects.create(type=Event.Type.CONNECTION_CONNECTED, data={"x": 1})
    return EventDelivery.objects.create(event=event, endpoint=endpoint, status=EventDelivery.Status.FAILED)


@pytest.fixture
def failed_zoom_delivery(zoom_app):
    return ZoomWebhookDelivery.objects.create(
        app=zoom_app,
        event="meeting.created",
        body=b"{}",
        body_sha256=ZoomWebhookDelivery.digest(b"{}"),
        zm_request_timestamp="1700000000",
        zm_signature="v0=abc",
        target_url="https://recall.example.com/webhook",
        status=ZoomWebhookDelivery.Status.FAILED,
    )


def test_a_viewer_cannot_rotate_an_endpoint_secret(client, endpoint):
    client.force_login(staff_with("webhooks.view_eventendpoint"))
    assert offered_actions(client, ENDPOINTS) == set()
    response = post_action(client, ENDPOINTS, "rotate_secret", endpoint.pk)
    assert response.status_code == 200 and "whsec_" not in response.content.decode()
    assert EventEndpoint.objects.get(pk=endpoint.pk).secret == endpoint.secret


def test_rotating_an_endpoint_secret_needs_the_change_permission(client, endpoint):
    client.force_login(staff_with("webhooks.view_eventendpoint", "webhooks.change_eventendpoint"))
    assert offered_actions(client, ENDPOINTS) == {"rotate_secret"}
    response = post_action(client, ENDPOINTS, "rotate_secret", endpoint.pk)
    assert response.status_code == 302
    assert EventEndpoint.objects.get(pk=endpoint.pk).secret != endpoint.secret


def test_a_viewer_of_an_endpoint_sees_set_never_the_secret(client, endpoint):
    client.force_login(staff_with("webhooks.view_eventendpoint"))
    html = client.get(f"{ENDPOINTS}{endpoint.pk}/change/").content.decode()
    assert endpoint.url in html and endpoint.secret not in html
    assert '<div class="readonly">set</div>' in html


def test_a_viewer_cannot_send_an_event_again(client, failed_event_delivery):
    client.force_login(staff_with("webhooks.view_eventdelivery"))
    assert offered_actions(client, EVENT_DELIVERIES) == set()
    post_action(client, EVENT_DELIVERIES, "replay", failed_event_delivery.pk)
    assert EventDelivery.objects.get().status == EventDelivery.Status.FAILED

    client.force_login(staff_with("webhooks.view_eventdelivery", "webhooks.change_eventdelivery"))
    assert offered_actions(client, EVENT_DELIVERIES) == {"replay"}
    assert post_action(client, EVENT_DELIVERIES, "replay", failed_event_delivery.pk).status_code == 302
    assert EventDelivery.objects.get().status == EventDelivery.Status.PENDING


def test_a_viewer_cannot_replay_or_resolve_a_zoom_delivery(client, failed_zoom_delivery):
    client.force_login(staff_with("webhooks.view_zoomwebhookdelivery"))
    assert offered_actions(client, ZOOM_DELIVERIES) == set()
    for action in ("replay_now", "mark_resolved"):
        post_action(client, ZOOM_DELIVERIES, action, failed_zoom_delivery.pk)
    assert ZoomWebhookDelivery.objects.get().status == ZoomWebhookDelivery.Status.FAILED


def test_replaying_and_resolving_a_zoom_delivery_need_the_change_permission(client, failed_zoom_delivery):
    client.force_login(staff_with("webhooks.view_zoomwebhookdelivery", "webhooks.change_zoomwebhookdelivery"))
    assert offered_actions(client, ZOOM_DELIVERIES) == {"replay_now", "mark_resolved"}
    assert post_action(client, ZOOM_DELIVERIES, "replay_now", failed_zoom_delivery.pk).status_code == 302
    assert ZoomWebhookDelivery.objects.get().status == ZoomWebhookDelivery.Status.PENDING
    assert post_action(client, ZOOM_DELIVERIES, "mark_resolved", failed_zoom_delivery.pk).status_code == 302
    assert ZoomWebhookDelivery.objects.get().status == ZoomWebhookDelivery.Status.RESOLVED
