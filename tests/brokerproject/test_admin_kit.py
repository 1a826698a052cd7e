"""The admin's shared pieces (brokerproject/admin_kit.py), through the admin pages that use them."""

import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import RequestFactory
from django.utils import timezone

from brokerproject.admin_kit import for_each_reporting
from tests.staff import staff_with
from webhooks.models import DeliveryAttempt, ZoomWebhookDelivery
from zoomauth.models import CallbackLog, ZoomConnection


def listed_pks(page) -> set[int]:
    return {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', page.content.decode())}


def test_a_choices_filter_offers_its_options_and_filters_by_them(client, connection):
    served = CallbackLog.objects.create(connection=connection, kind="zak", status_code=200, outcome="ok", latency_ms=1)
    refused = CallbackLog.objects.create(
        connection=connection, kind="zak", status_code=503, outcome="zoom down", latency_ms=1
    )
    client.force_login(staff_with("zoomauth.view_callbacklog", "zoomauth.delete_callbacklog"))
    changelist = "/admin/zoomauth/callbacklog/"

    page = client.get(changelist)
    assert "A token (200)" in page.content.decode() and "No token (anything else)" in page.content.decode()
    assert listed_pks(page) == {served.pk, refused.pk}
    assert listed_pks(client.get(changelist + "?answered=ok")) == {served.pk}
    assert listed_pks(client.get(changelist + "?answered=refused")) == {refused.pk}
    assert listed_pks(client.get(changelist + "?answered=bogus")) == {served.pk, refused.pk}  # filters nothing


def test_a_choices_filter_option_can_be_a_selector(client, connection, user, zoom_app):
    failing = ZoomConnection.objects.create(
        user=user,
        app=zoom_app,
        zoom_user_id="zu_failing",
        consecutive_failures=2,
        access_token_expires_at=timezone.now() + timedelta(hours=1),
    )
    ZoomConnection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() + timedelta(minutes=1)
    )
    client.force_login(staff_with("zoomauth.view_zoomconnection", "zoomauth.delete_zoomconnection"))
    changelist = "/admin/zoomauth/zoomconnection/"

    assert listed_pks(client.get(changelist)) == {connection.pk, failing.pk}
    assert listed_pks(client.get(changelist + "?health=failing")) == {failing.pk}
    assert listed_pks(client.get(changelist + "?health=expiring")) == {connection.pk}


def test_a_history_inline_shows_rows_and_offers_no_way_to_change_them(client, connection):
    delivery = ZoomWebhookDelivery.objects.create(
        app=connection.app,
        body=b'{"event": "meeting.created"}',
        body_sha256="0" * 64,
        zm_request_timestamp="1700000000",
        zm_signature="v0=" + "0" * 64,
    )
    DeliveryAttempt.objects.create(delivery=delivery, status_code=502, latency_ms=7, error="bad gateway")
    client.force_login(staff_with("webhooks.change_zoomwebhookdelivery", "webhooks.change_deliveryattempt"))

    page = client.get(f"/admin/webhooks/zoomwebhookdelivery/{delivery.pk}/change/").content.decode()
    assert "<p>bad gateway</p>" in page  # shown as text, not as an input
    assert 'name="attempt_log-0-error"' not in page
    assert 'name="attempt_log-0-DELETE"' not in page
    assert 'name="attempt_log-MAX_NUM_FORMS" value="0"' in page  # no row can be added


def test_each_object_is_tried_and_each_failure_is_reported_by_name(db):
    request = RequestFactory().post("/admin/")
    request.session = {}
    request._messages = FallbackStorage(request)
    tried = []

    def call(name):
        tried.append(name)
        if name.startswith("bad"):
            raise ValueError(f"{name} refused")
        if name == "other":
            raise KeyError(name)

    done = for_each_reporting(request, ["ok-1", "bad-1", "ok-2", "bad-2"], call, failures=(ValueError,))

    assert done == 2
    assert tried == ["ok-1", "bad-1", "ok-2", "bad-2"]
    assert [str(m) for m in get_messages(request)] == ["bad-1: bad-1 refused", "bad-2: bad-2 refused"]
    with pytest.raises(KeyError):  # a failure not named in `failures` is not swallowed
        for_each_reporting(request, ["other"], call, failures=(ValueError,))
