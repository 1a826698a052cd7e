"""Revoking API tokens in the admin needs the change permission; a viewer's forged POST does nothing."""

from accounts.models import ApiToken
from tests.staff import offered_actions, post_action, staff_with

TOKENS = "/admin/accounts/apitoken/"


def test_a_viewer_cannot_revoke_an_api_token_and_never_sees_a_key(client, user):
    token, raw = ApiToken.issue(user=user, name="backend")
    client.force_login(staff_with("accounts.view_apitoken"))
    assert offered_actions(client, TOKENS) == set()
    post_action(client, TOKENS, "revoke", token.pk)
    assert ApiToken.objects.get().revoked_at is None
    html = client.get(f"{TOKENS}{token.pk}/change/").content.decode()
    assert token.key_prefix in html and raw not in html and token.key_hash not in html


def test_revoking_an_api_token_needs_the_change_permission(client, user):
    token, _ = ApiToken.issue(user=user, name="backend")
    client.force_login(staff_with("accounts.view_apitoken", "accounts.change_apitoken"))
    assert offered_actions(client, TOKENS) == {"revoke"}
    assert post_action(client, TOKENS, "revoke", token.pk).status_code == 302
    assert ApiToken.objects.get().revoked_at is not None
