"""The admin's home is an overview of what is wrong: figures from the database, each linking to
the list behind it, only for staff who may view that model."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.models import User
from recallbots.models import Bot
from webhooks.models import ZoomWebhookDelivery
from zoomauth.audit import audit_write
from zoomauth.models import CallbackHourStat, CallbackLog, ConnectSession, ZoomConnection


def figure(page: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}">\s*<span class="ov-value">([^<]*)</span>', page)
    assert found, f"no figure {name}"
    return found.group(1).strip()


def figure_link(page: str, name: str) -> str:
    found = re.search(rf'<a class="ov-figure[^"]*" href="([^"]+)"[^>]*data-figure="{name}"', page)
    assert found, f"no link for {name}"
    return found.group(1).replace("&amp;", "&")


@pytest.fixture
def world(db, zoom_app, user):
    now = timezone.now()
    make = ZoomConnection.objects.create
    active = make(user=user, app=zoom_app, zoom_user_id="zu_1", access_token_expires_at=now + timedelta(hours=1))
    make(
        user=user,
        app=zoom_app,
        zoom_user_id="zu_2",
        status=ZoomConnection.Status.NEEDS_RECONNECT,
        needs_reconnect_since=now - timedelta(hours=3),
        last_error="Zoom refused the refresh token (invalid_grant): the user must reconnect.",
    )
    make(user=user, app=zoom_app, zoom_user_id="zu_3", consecutive_failures=2, last_error="Zoom answered 503")
    make(user=user, app=zoom_app, zoom_user_id="zu_4", access_token_expires_at=now + timedelta(seconds=30))
    logs = [CallbackLog(connection=active, kind="zak", status_code=200, outcome="ok", latency_ms=40) for _ in range(8)]
    logs += [CallbackLog(connection=active, kind="zak", status_code=503, outcome="slow", latency_ms=3900)] * 2
    logs += [CallbackLog(connection=active, kind="obf", status_code=200, outcome="ok", latency_ms=120)]
    audit_write(logs)  # what the audit writer does after the answers: the rows and their hourly counts
    hour = (now - timedelta(hours=30)).replace(minute=0, second=0, microsecond=0)  # a day and more ago
    CallbackHourStat.objects.create(hour=hour, kind="zak", latency_bucket=0, answered=7, answered_200=0)
    ZoomWebhookDelivery.objects.create(
        app=zoom_app, event="meeting.created", body=b"{}", body_sha256="x" * 64, target_url="https://r.example/w"
    )
    Bot.objects.create(user=user, meeting_url="https://zoom.us/j/1", status="fatal")
    return active


def test_the_overview_shows_what_is_wrong_with_links(client, staff, world):
    client.force_login(staff)
    page = client.get("/admin/").content.decode()
    assert figure(page, "need-reconnect") == "1"
    assert figure(page, "failing-refreshes") == "1"
    assert figure(page, "expiring-without-refresh") == "1"
    assert "zu_2" in page or "alice" in page  # the needs-reconnect row names its user
    assert "3\xa0hours ago" in page  # since when
    assert "invalid_grant" in page  # the reason
    zak = re.search(
        r"<td>zak</td>\s*<td><a href=\"[^\"]+\">(\d+)</a></td>\s*<td><a class=\"(\w*)\"[^>]*>([^<]+)</a>", page
    )
    assert zak and zak.group(1) == "10" and zak.group(3) == "80.0%" and zak.group(2) == "bad"
    assert '<svg class="spark"' in page
    assert figure(page, "waiting-to-be-forwarded") == "1"
    assert figure(page, "fatal") == "1"
    # The figures link to the admin lists behind them, which show the same rows.
    listed = client.get(figure_link(page, "need-reconnect"))
    assert listed.status_code == 200 and "1 Zoom connection" in listed.content.decode()
    failing = client.get(figure_link(page, "failing-refreshes"))
    assert failing.status_code == 200 and "Zoom answered 503" in failing.content.decode()  # last error shown


def test_staff_without_view_permission_do_not_see_those_figures(client, world):
    person = User.objects.create_user(username="ops", password="correct horse battery", is_staff=True)
    person.user_permissions.add(Permission.objects.get(codename="view_bot"))
    client.force_login(person)
    page = client.get("/admin/").content.decode()
    assert figure(page, "fatal") == "1"
    assert 'data-figure="need-reconnect"' not in page and "Token callbacks" not in page
    assert "Zoom events to Recall" not in page


def test_a_connect_link_for_a_user_who_must_reconnect(client, staff, world):
    client.force_login(staff)
    waiting = ZoomConnection.objects.get(zoom_user_id="zu_2")
    response = client.post(f"/admin/zoomauth/zoomconnection/{waiting.pk}/connect-link/", follow=True)
    assert response.status_code == 200
    session = ConnectSession.objects.get()
    assert session.user == waiting.user and "/zoom/connect/s/" in response.content.decode()
    assert client.get(f"/admin/zoomauth/zoomconnection/{waiting.pk}/connect-link/").status_code == 403


def test_the_overview_costs_the_same_queries_however_many_rows(
    client, staff, world, zoom_app, user, django_assert_max_num_queries
):
    client.force_login(staff)
    with django_assert_max_num_queries(40) as few:
        client.get("/admin/")
    ZoomConnection.objects.bulk_create(
        ZoomConnection(user=user, app=zoom_app, zoom_user_id=f"zu_x{i}", status=ZoomConnection.Status.NEEDS_RECONNECT)
        for i in range(50)
    )
    audit_write(
        [CallbackLog(connection=world, kind="obf", status_code=200, outcome="ok", latency_ms=i) for i in range(500)]
    )
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get("/admin/")
