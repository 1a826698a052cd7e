"""Staff pages: secrets are write-only and tokens never appear."""

from zoomauth.models import ZoomApp, ZoomConnection


def test_zoom_app_secrets_are_write_only(client, staff, db):
    client.force_login(staff)
    response = client.post(
        "/admin/zoomauth/zoomapp/add/",
        {
            "name": "Main",
            "kind": "user_level",
            "client_id": "cid",
            "client_secret": "top-secret-1",
            "webhook_secret": "token-secret-2",
            "expected_scopes": "user:read:zak",
            "credential_mode": "customer_managed",
        },
    )
    assert response.status_code == 302
    app = ZoomApp.objects.get()
    page = client.get(f"/admin/zoomauth/zoomapp/{app.pk}/change/").content.decode()
    assert "top-secret-1" not in page and "token-secret-2" not in page
    assert app.redirect_uri in page and app.webhook_url in page  # what to paste into Zoom
    client.post(
        f"/admin/zoomauth/zoomapp/{app.pk}/change/",
        {
            "name": "Renamed",
            "kind": "user_level",
            "client_id": "cid",
            "client_secret": "",
            "webhook_secret": "",
            "expected_scopes": "user:read:zak",
            "credential_mode": "customer_managed",
        },
    )
    app.refresh_from_db()
    assert (app.name, app.client_secret, app.webhook_secret) == ("Renamed", "top-secret-1", "token-secret-2")


def test_connection_admin_never_shows_tokens_and_refreshes_on_demand(client, staff, connection, fake_zoom):
    client.force_login(staff)
    listing = client.get("/admin/zoomauth/zoomconnection/").content.decode()
    assert connection.email in listing
    assert connection.access_token not in listing and connection.callback_secret not in listing
    detail = client.get(f"/admin/zoomauth/zoomconnection/{connection.pk}/change/").content.decode()
    assert connection.access_token not in detail and connection.refresh_token not in detail
    assert connection.callback_secret not in detail  # only on the recorded reveal page
    response = client.post(
        "/admin/zoomauth/zoomconnection/", {"action": "refresh_now", "_selected_action": [connection.pk]}
    )
    assert response.status_code == 302
    assert fake_zoom.counters["refresh"] == 1
    assert ZoomConnection.objects.get().access_token != connection.access_token


def test_rotating_the_secret_from_admin(client, staff, connection):
    client.force_login(staff)
    client.post(
        "/admin/zoomauth/zoomconnection/", {"action": "rotate_callback_secret", "_selected_action": [connection.pk]}
    )
    rotated = ZoomConnection.objects.get()
    assert rotated.callback_secret_hash != connection.callback_secret_hash
    assert not rotated.check_callback_secret(connection.callback_secret)


def test_callback_urls_are_revealed_only_by_a_recorded_staff_action(client, staff, connection):
    from django.contrib.admin.models import LogEntry

    client.force_login(staff)
    reveal = f"/admin/zoomauth/zoomconnection/{connection.pk}/reveal-callback-urls/"
    detail = client.get(f"/admin/zoomauth/zoomconnection/{connection.pk}/change/")
    assert reveal in detail.content.decode()
    confirm = client.get(reveal)
    assert confirm.status_code == 200 and connection.callback_secret not in confirm.content.decode()
    assert not LogEntry.objects.exists()
    shown = client.post(reveal)
    assert shown.status_code == 200 and shown["Cache-Control"].startswith("max-age=0")
    assert connection.callback_secret in shown.content.decode()
    entry = LogEntry.objects.get()
    assert (entry.user, entry.object_id, entry.get_change_message()) == (
        staff,
        str(connection.pk),
        "Revealed the callback URLs (with their secret) in the admin.",
    )
