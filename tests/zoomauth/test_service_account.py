from tests.conftest import connect_via_fake_zoom
from zoomauth.models import ZoomConnection


def test_only_one_service_account_and_staff_get_a_form_error(client, staff, zoom_app, fake_zoom):
    client.force_login(staff)
    for zoom_user in ("zu_alice", "zu_bob"):
        assert connect_via_fake_zoom(client, fake_zoom, zoom_user).status_code == 200
    alice, bob = (ZoomConnection.objects.get(zoom_user_id=z) for z in ("zu_alice", "zu_bob"))
    assert (
        client.post(f"/admin/zoomauth/zoomconnection/{alice.pk}/change/", {"is_service_account": "on"}).status_code
        == 302
    )
    response = client.post(f"/admin/zoomauth/zoomconnection/{bob.pk}/change/", {"is_service_account": "on"})
    assert response.status_code == 200
    assert "Another connection is already the service account: unmark it first." in response.content.decode()
    assert list(ZoomConnection.objects.filter(is_service_account=True)) == [alice]


def test_a_staff_change_keeps_the_tokens_a_refresh_stored_meanwhile(staff, connection, rf):
    """The change form writes only what staff changed: a refresh that lands between the form's
    read and its save keeps its rotated tokens (a full save would write back the dead ones)."""
    from datetime import timedelta

    from django.contrib import admin

    from zoomauth.services.refresh import connection_fresh_access_token

    request = rf.post("/admin/")
    request.user = staff
    model_admin = admin.site._registry[ZoomConnection]
    read = model_admin.get_object(request, str(connection.pk))
    form = model_admin.get_form(request, read, change=True)({"is_service_account": "on"}, instance=read)
    assert form.is_valid(), form.errors
    refreshed = connection_fresh_access_token(connection_id=connection.pk, min_validity=timedelta(days=1))
    assert refreshed.zoom_calls == 1  # Zoom rotated the tokens: the ones the form read are dead
    model_admin.save_model(request, form.save(commit=False), form, change=True)
    stored = ZoomConnection.objects.get(pk=connection.pk)
    assert stored.is_service_account
    assert (stored.access_token, stored.token_generation) == (refreshed.token, read.token_generation + 1)
