"""Fixtures of the bot and credential tests: a registered Recall app, a second user (bob) with his
own connection and a meeting he hosts, and the customer backend's API credentials (a staff user's
token) with the end user it launches for (`cust-7`)."""

import pytest

from accounts.models import ApiToken, User
from recallbots.services import recall_app_register
from tests.conftest import connect_via_fake_zoom
from zoomauth.models import ZoomConnection, ZoomMeeting

ALICE_MEETING = "85011110001"
BOB_MEETING = "85022220002"


@pytest.fixture
def recall_app(zoom_app, fake_recall):
    return recall_app_register(zoom_app=zoom_app)


@pytest.fixture
def bob(zoom_app, client, fake_zoom):
    person = User.objects.create_user(username="bob", password="correct horse battery")
    client.force_login(person)
    assert connect_via_fake_zoom(client, fake_zoom, zoom_user_id="zu_bob").status_code == 200
    client.logout()
    connection = ZoomConnection.objects.get(zoom_user_id="zu_bob")
    fake_zoom.add_meeting(id=BOB_MEETING, host_id="zu_bob")
    ZoomMeeting.objects.create(meeting_id=BOB_MEETING, host_connection=connection)  # meeting.created told us
    return connection


@pytest.fixture
def backend(staff):
    _, raw = ApiToken.issue(user=staff, name="customer backend")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def end_user_connection(connection):
    connection.user.external_user_id = "cust-7"
    connection.user.save(update_fields=["external_user_id"])
    return connection
