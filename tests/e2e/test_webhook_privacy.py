"""A guest's participant events through the real processes (gunicorn's intake, the zoom-events
worker, the fake Recall taking the forwards): afterwards no table holds anything of the guest."""

import hashlib
import json

from fakes.zoom import send_webhook
from tests.conftest import WEBHOOK_SECRET
from tests.e2e.conftest import wait_for
from tests.webhooks.test_zoom_webhook_privacy import guest_traces, tables_containing
from webhooks.models import ZoomWebhookDelivery
from zoomauth.models import MeetingActivity

MEETING = "85011223344"


def test_a_guests_join_and_leave_leave_nothing_of_the_guest_in_the_database(e2e):
    broker, fake_zoom, fake_recall, app = e2e
    from recallbots.services import recall_app_register

    recall_app_register(zoom_app=app)
    intake = f"{broker.url}/webhooks/zoom/{app.public_id}/"
    fake_zoom.add_meeting(id=MEETING, host_id="zu_alice")
    fake_zoom.configure(events_url=intake, events_secret=WEBHOOK_SECRET)
    guest = {"user_name": "Mallory Guestname", "email": "mallory.guest@example.org"}
    sent = [fake_zoom._post(f"/_control/meetings/{MEETING}/{action}", guest)["event"] for action in ("join", "leave")]
    bodies = [json.dumps(event, separators=(",", ":")).encode() for event in sent]

    def forwarded_and_cleared():
        rows = list(ZoomWebhookDelivery.objects.all())
        return len(rows) == 2 and all(row.body_cleared_at for row in rows)

    wait_for(forwarded_and_cleared, timeout=30)
    receipts = fake_recall.webhook_receipts
    assert sorted(r["sha256"] for r in receipts) == sorted(hashlib.sha256(b).hexdigest() for b in bodies)
    assert all(r["signature_valid"] for r in receipts)
    assert MeetingActivity.objects.get(meeting_id=MEETING).others_count == 0
    assert tables_containing(*guest_traces(sent[0]), *guest_traces(sent[1])) == []

    # Zoom retries the join (same bytes): dropped at the intake, nothing stored to forward again.
    assert send_webhook(url=intake, secret=WEBHOOK_SECRET, body=bodies[0])[0] == 200
    assert ZoomWebhookDelivery.objects.count() == 2
