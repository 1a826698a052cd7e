from accounts.models import ApiToken, hash_token


def test_api_token_is_stored_hashed(user):
    token, raw = ApiToken.issue(user=user, name="backend")
    assert raw.startswith("ztb_")
    assert token.key_hash == hash_token(raw)
    assert raw not in str(token) and raw not in repr(ApiToken.objects.values())


def test_api_token_authenticates_drf_requests(api_client, user):
    _, raw = ApiToken.issue(user=user, name="backend")
    response = api_client.get("/api/connections/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    assert response.json() == []
    assert ApiToken.objects.get().last_used_at is not None


def test_revoked_or_unknown_token_is_refused(api_client, user):
    token, raw = ApiToken.issue(user=user, name="backend")
    token.revoke()
    response = api_client.get("/api/connections/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or revoked API token."
    assert api_client.get("/api/connections/", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert api_client.get("/api/connections/").status_code in (401, 403)


def test_admin_creates_a_token_and_shows_the_key_once(client, staff):
    client.force_login(staff)
    response = client.post("/admin/accounts/apitoken/add/", {"user": staff.pk, "name": "ci"}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert any("ztb_" in m for m in shown)
    raw = next(m for m in shown if "ztb_" in m).split(": ", 1)[1]
    assert ApiToken.objects.get(name="ci").key_hash == hash_token(raw)
    listing = client.get("/admin/accounts/apitoken/")
    assert raw not in listing.content.decode()


def test_sign_in_and_out_pages(client, user):
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "alice", "password": "correct horse battery"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302
