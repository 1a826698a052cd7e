"""Each admin action and page of zoomauth, as a staff account with only the neighbouring
permission (view) would use it, then with the one it needs."""

from tests.conftest import CLIENT_SECRET, WEBHOOK_SECRET
from tests.staff import offered_actions, post_action, staff_with
from zoomauth.models import ZoomConnection

CONNECTIONS = "/admin/zoomauth/zoomconnection/"


def test_a_viewer_is_offered_no_connection_action_and_a_forged_one_changes_nothing(client, connection, fake_zoom):
    client.force_login(staff_with("zoomauth.view_zoomconnection"))
    assert offered_actions(client, CONNECTIONS) == set()
    for action in ("refresh_now", "disconnect", "rotate_callback_secret"):
        response = post_action(client, CONNECTIONS, action, connection.pk)
        assert response.status_code in (200, 302, 403)
    after = ZoomConnection.objects.get(pk=connection.pk)
    assert after.status == ZoomConnection.Status.ACTIVE and after.revoked_at is None
    assert after.access_token == connection.access_token and fake_zoom.counters["refresh"] == 0
    assert after.callback_secret_hash == connection.callback_secret_hash


def test_refresh_and_rotate_need_the_change_permission(client, connection, fake_zoom):
    client.force_login(staff_with("zoomauth.view_zoomconnection", "zoomauth.change_zoomconnection"))
    assert offered_actions(client, CONNECTIONS) == {"refresh_now", "rotate_callback_secret"}
    assert post_action(client, CONNECTIONS, "disconnect", connection.pk).status_code == 302  # "No action selected"
    assert ZoomConnection.objects.get(pk=connection.pk).status == ZoomConnection.Status.ACTIVE

    assert post_action(client, CONNECTIONS, "refresh_now", connection.pk).status_code == 302
    assert fake_zoom.counters["refresh"] == 1
    assert post_action(client, CONNECTIONS, "rotate_callback_secret", connection.pk).status_code == 302
    assert not ZoomConnection.objects.get(pk=connection.pk).check_callback_secret(connection.callback_secret)


def test_disconnect_needs_the_delete_permission(client, connection):
    client.force_login(staff_with("zoomauth.view_zoomconnection", "zoomauth.delete_zoomconnection"))
    assert "disconnect" in offered_actions(client, CONNECTIONS)
    assert post_action(client, CONNECTIONS, "disconnect", connection.pk).status_code == 302
    assert ZoomConnection.objects.get(pk=connection.pk).status == ZoomConnection.Status.REVOKED


def test_a_viewer_of_a_zoom_app_sees_whether_its_secrets_are_set_never_them(client, zoom_app):
    client.force_login(staff_with("zoomauth.view_zoomapp"))
    page = client.get(f"/admin/zoomauth/zoomapp/{zoom_app.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and zoom_app.client_id in html
    assert CLIENT_SECRET not in html and WEBHOOK_SECRET not in html
    assert html.count('<div class="readonly">set</div>') == 2  # client secret, Zoom's Secret Token

    type(zoom_app).objects.filter(pk=zoom_app.pk).update(webhook_secret="")
    html = client.get(f"/admin/zoomauth/zoomapp/{zoom_app.pk}/change/").content.decode()
    assert '<div class="readonly">not set</div>' in html and CLIENT_SECRET not in html


def test_an_editor_of_a_zoom_app_gets_empty_secret_inputs_and_the_state(client, zoom_app):
    client.force_login(staff_with("zoomauth.view_zoomapp", "zoomauth.change_zoomapp"))
    html = client.get(f"/admin/zoomauth/zoomapp/{zoom_app.pk}/change/").content.decode()
    assert 'name="client_secret"' in html and 'name="webhook_secret"' in html
    assert CLIENT_SECRET not in html and WEBHOOK_SECRET not in html
    assert html.count('<div class="readonly">set</div>') == 2
