"""Meeting presence from Zoom's meeting and participant events, as the fake Zoom shapes them,
taken in at the broker's intake and handled as the worker does."""

import json
import time
from datetime import timedelta

import pytest
from django.db import connection as db
from django.utils import timezone

from fakes.zoom import sign_webhook
from tests.conftest import WEBHOOK_SECRET
from webhooks.models import ZoomWebhookDelivery
from webhooks.services import event_handle_locally
from zoomauth.models import MeetingActivity, MeetingPresence, ZoomConnection
from zoomauth.presence import connections_present, meeting_activity_prune, meeting_visible

pytestmark = pytest.mark.django_db(transaction=True)

MEETING = "85099887766"


def post_event(client, zoom_app, event: dict) -> int:
    body = json.dumps(event, separators=(",", ":")).encode()
    timestamp = str(int(time.time() * 1000))
    response = client.post(
        f"/webhooks/zoom/{zoom_app.public_id}/",
        body,
        content_type="application/json",
        HTTP_X_ZM_REQUEST_TIMESTAMP=timestamp,
        HTTP_X_ZM_SIGNATURE=sign_webhook(WEBHOOK_SECRET, timestamp, body),
    )
    assert response.status_code == 200
    return response.status_code


def handle_all():
    for pk in ZoomWebhookDelivery.objects.filter(processed_at__isnull=True).order_by("pk").values_list("pk", flat=True):
        event_handle_locally(delivery_id=pk)


@pytest.fixture
def meeting(fake_zoom, zoom_app):
    fake_zoom.add_meeting(id=MEETING, host_id="zu_bob")
    fake_zoom.add_user(id="zu_carol", email="carol@zoom.example")
    return MEETING


def story(fake_zoom, t0: int) -> list[dict]:
    """Alice joins, a guest joins, Alice leaves and comes back, the guest leaves: 1 s apart."""
    steps = [
        ("start", {}),
        ("join", {"user_id": "zu_alice"}),
        ("join", {"guest_name": "Mallory Guest", "guest_email": "mallory@example.org"}),
        ("leave", {"user_id": "zu_alice"}),
        ("join", {"user_id": "zu_alice"}),
        ("join", {"guest_name": "Trent Guest"}),
        ("leave", {"guest_name": "Mallory Guest", "guest_email": "mallory@example.org"}),
    ]
    return [
        fake_zoom.meeting_event(MEETING, action, event_ts=t0 + 1000 * n, **options)
        for n, (action, options) in enumerate(steps)
    ]


def snapshot():
    activity = MeetingActivity.objects.get(meeting_id=MEETING)
    presences = sorted(MeetingPresence.objects.values_list("connection__zoom_user_id", "joined_at", "left_at"))
    return (activity.started_at, activity.ended_at, activity.others_count, activity.is_running, presences)


def test_a_connected_users_join_and_leave_are_kept_and_guests_only_counted(client, connection, meeting, fake_zoom):
    t0 = int(time.time() * 1000) - 60_000
    for event in story(fake_zoom, t0):
        post_event(client, connection.app, event)
    handle_all()
    activity = MeetingActivity.objects.get(meeting_id=MEETING)
    assert activity.is_running and activity.others_present == 1  # Trent is still in
    presence = MeetingPresence.objects.get()
    assert presence.connection_id == connection.pk and presence.is_present
    assert connections_present(meeting_id=MEETING, connection_ids=[connection.pk]) == [connection.pk]
    assert meeting_visible(app_id=connection.app_id, meeting_id=MEETING)
    assert not meeting_visible(app_id=connection.app_id, meeting_id="85000000001")


@pytest.mark.parametrize("order", ["reverse", "shuffle", "twice"])
def test_events_twice_or_out_of_order_leave_the_same_presence(client, connection, meeting, fake_zoom, order):
    t0 = int(time.time() * 1000) - 60_000
    events = story(fake_zoom, t0)
    for event in events:
        post_event(client, connection.app, event)
    handle_all()
    in_order = snapshot()
    MeetingActivity.objects.all().delete()
    ZoomWebhookDelivery.objects.all().delete()
    replay = {"reverse": events[::-1], "shuffle": [events[i] for i in (3, 6, 0, 5, 1, 4, 2)], "twice": events * 2}
    for event in replay[order]:
        post_event(client, connection.app, event)
    handle_all()
    assert snapshot() == in_order


def test_meeting_ended_closes_everyones_presence_even_when_a_join_comes_after_it(
    client, connection, meeting, fake_zoom
):
    t0 = int(time.time() * 1000) - 60_000
    post_event(client, connection.app, fake_zoom.meeting_event(MEETING, "start", event_ts=t0))
    post_event(client, connection.app, fake_zoom.meeting_event(MEETING, "end", event_ts=t0 + 5000))
    # Alice's join from before the end, delivered late by Zoom's retries
    post_event(client, connection.app, fake_zoom.meeting_event(MEETING, "join", user_id="zu_alice", event_ts=t0 + 1000))
    handle_all()
    activity = MeetingActivity.objects.get(meeting_id=MEETING)
    assert not activity.is_running
    assert not MeetingPresence.objects.get().is_present
    assert connections_present(meeting_id=MEETING, connection_ids=[connection.pk]) == []
    # the meeting starts again later and Alice joins again: she is in
    post_event(client, connection.app, fake_zoom.meeting_event(MEETING, "join", user_id="zu_alice", event_ts=t0 + 9000))
    handle_all()
    assert MeetingPresence.objects.get().is_present and MeetingActivity.objects.get().is_running


def test_matched_by_zoom_user_id_on_the_same_app_only_never_by_name_or_email(client, connection, meeting, fake_zoom):
    event = fake_zoom.meeting_event(MEETING, "join", guest_name="alice", guest_email=connection.email)
    event["payload"]["object"]["participant"]["user_id"] = "zu_alice"  # the id in this meeting, not a user id
    post_event(client, connection.app, event)
    handle_all()
    assert MeetingPresence.objects.count() == 0
    assert MeetingActivity.objects.get().others_count == 1


def test_no_participant_data_is_kept_for_people_who_are_not_connected_users(client, connection, meeting, fake_zoom):
    fake_zoom.users["zu_carol"].email = "carol-secret@zoom.example"  # signed in, but not connected
    events = [
        fake_zoom.meeting_event(MEETING, "join", user_id="zu_carol"),
        fake_zoom.meeting_event(MEETING, "join", guest_name="Mallory Guestname", guest_email="mallory@example.org"),
        fake_zoom.meeting_event(MEETING, "join", user_id="zu_alice"),
    ]
    for event in events:
        post_event(client, connection.app, event)
    handle_all()
    assert MeetingPresence.objects.count() == 1
    with db.cursor() as cursor:
        for table in ("zoomauth_meetingactivity", "zoomauth_meetingpresence"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed names
            text = repr(cursor.fetchall())
            for needle in ("zu_carol", "carol-secret", "Mallory", "mallory@", "16778"):
                assert needle not in text, (table, needle)


def test_presence_of_a_connection_on_another_app_is_not_this_apps(client, connection, meeting, fake_zoom, zoom_app):
    from zoomauth.models import ZoomApp

    other = ZoomApp.objects.create(name="Other", client_id="other-client", webhook_secret=WEBHOOK_SECRET)
    post_event(client, other, fake_zoom.meeting_event(MEETING, "join", user_id="zu_alice"))
    handle_all()
    assert MeetingPresence.objects.count() == 0


def test_old_meetings_are_pruned(client, connection, meeting, fake_zoom, settings):
    post_event(client, connection.app, fake_zoom.meeting_event(MEETING, "join", user_id="zu_alice"))
    handle_all()
    assert meeting_activity_prune() == 0
    later = timezone.now() + settings.MEETING_ACTIVITY_RETENTION + timedelta(minutes=1)
    assert meeting_activity_prune(now=later) >= 1
    assert not MeetingActivity.objects.exists() and not MeetingPresence.objects.exists()
    assert ZoomConnection.objects.filter(pk=connection.pk).exists()


def test_a_revoked_connection_is_not_matched(client, connection, meeting, fake_zoom):
    ZoomConnection.objects.filter(pk=connection.pk).update(status=ZoomConnection.Status.REVOKED)
    post_event(client, connection.app, fake_zoom.meeting_event(MEETING, "join", user_id="zu_alice"))
    handle_all()
    assert MeetingPresence.objects.count() == 0


def test_the_zoom_app_admin_page_lists_the_meeting_events_to_subscribe_to(client, staff, zoom_app):
    client.force_login(staff)
    page = client.get(f"/admin/zoomauth/zoomapp/{zoom_app.pk}/change/").content.decode()
    for event in ("meeting.started", "meeting.ended", "meeting.participant_joined", "meeting.participant_left"):
        assert event in page
