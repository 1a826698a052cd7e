"""Seeds the demo: a Zoom app in the broker and in both fakes, fake Zoom users and meetings, a
staff account. Run by scripts/demo after the fakes are up; prints the walk-through."""

import os
import secrets

import django
import requests

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerproject.settings")
django.setup()

from django.conf import settings  # noqa: E402

from accounts.models import User  # noqa: E402
from recallbots.models import RecallCredential, RecallOAuthApp  # noqa: E402
from recallbots.services import recall_app_register  # noqa: E402
from zoomauth.models import ZoomApp  # noqa: E402

ZOOM = settings.ZOOM_OAUTH_BASE_URL
RECALL = settings.RECALL_API_BASE_URL.rsplit("/", 1)[0]
BROKER = settings.PUBLIC_BASE_URL


def main() -> None:
    app, _ = ZoomApp.objects.get_or_create(
        client_id="demo-client-id",
        defaults={
            "name": "Demo notetaker",
            "client_secret": "demo-client-secret",
            "webhook_secret": "demo-secret-token",
        },
    )
    requests.post(
        f"{ZOOM}/_control/apps",
        json={"client_id": app.client_id, "client_secret": app.client_secret, "redirect_uris": [app.redirect_uri]},
        timeout=5,
    ).raise_for_status()
    for user in (
        {"id": "zu_alice", "email": "alice@zoom.example", "pmi": "5551234567"},
        {"id": "zu_bob", "email": "bob@zoom.example", "pmi": "5559876543"},
        {"id": "zu_service", "email": "bots@zoom.example"},
    ):
        requests.post(f"{ZOOM}/_control/users", json=user, timeout=5).raise_for_status()
    for meeting in (
        {"id": "85000000001", "host_id": "zu_alice"},
        {"id": "85000000002", "host_id": "zu_bob", "requires_sign_in": True},
    ):
        requests.post(f"{ZOOM}/_control/meetings", json=meeting, timeout=5).raise_for_status()
    requests.post(
        f"{RECALL}/_control/config",
        json={
            "status_webhook_url": f"{BROKER}/recall/webhooks/bot-status/",
            "verification_secret": settings.RECALL_VERIFICATION_SECRET,
            "step_seconds": 1.0,
        },
        timeout=5,
    ).raise_for_status()
    # The fake Recall forgets everything on restart: drop what the broker remembers of it (its
    # credentials first: they protect the app), then register anew. Connections stay; their
    # credentials are registered again when their users reconnect.
    RecallCredential.objects.filter(recall_app__zoom_app=app).delete()
    RecallOAuthApp.objects.filter(zoom_app=app).delete()
    recall_app_register(zoom_app=app)

    password = secrets.token_urlsafe(9)
    staff, _ = User.objects.get_or_create(username="demo", defaults={"is_staff": True, "is_superuser": True})
    staff.set_password(password)
    staff.save()

    print(
        f"""
Demo ready. Fake Zoom: {ZOOM}  Fake Recall: {RECALL}/us-east-1  Broker: {BROKER}

1. Sign in at {BROKER}/accounts/login/ as  demo / {password}
2. Click "Connect a Zoom account" and allow as alice@zoom.example on the fake Zoom page.
   Your connection's callback URLs are then on {BROKER}/ .
3. Open "Launch a bot", paste  https://zoom.us/j/85000000001?pwd=demo  and keep "OBF" ticked.
   The bot waits in the waiting room: OBF bots join only after their user.
4. Let alice join the meeting:
     curl -X POST {ZOOM}/_control/meetings/85000000001/join -d '{{"user_id": "zu_alice"}}'
   The bot page (it refreshes itself) goes joining_call → in_call_recording → done.
5. Staff view: {BROKER}/admin/ opens on the overview of what is wrong (connections, callbacks, events, bots).
   Meeting 85000000002 only admits signed-in users: mark a connection as the service account in the
   admin, then launch with "ZAK" and "Take the ZAK from the service account".
""",
        flush=True,
    )


if __name__ == "__main__":
    main()
