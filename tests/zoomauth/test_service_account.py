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
