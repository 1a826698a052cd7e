"""The Recall client against the fake Recall over real HTTP."""

import time

import pytest
import responses

from recallbots import recall


@pytest.fixture
def client(fake_recall, settings):
    return recall.RecallClient()


def test_zoom_oauth_app_lifecycle(client, fake_recall):
    created = client.create_zoom_oauth_app(kind="user_level", client_id="cid", client_secret="s", webhook_secret="w")
    assert client.get_zoom_oauth_app(created["id"])["client_id"] == "cid"
    assert [a["id"] for a in client.list_zoom_oauth_apps(client_id="cid")] == [created["id"]]
    client.update_zoom_oauth_app(created["id"], webhook_secret="w2")
    assert fake_recall.apps[created["id"]]["webhook_secret"] == "w2"
    client.delete_zoom_oauth_app(created["id"])
    with pytest.raises(recall.RecallNotFoundError):
        client.get_zoom_oauth_app(created["id"])


def test_token_auth_header_and_region_base_url(client, fake_recall):
    client.list_zoom_oauth_apps()
    assert fake_recall.requests_log[-1]["path"] == "/us-east-1/api/v2/zoom-oauth-apps/"


def test_wrong_region_key_is_a_clear_401(fake_recall, settings):
    fake_recall.keys["eu-central-1"] = "a-different-key"
    eu = recall.RecallClient(base_url=recall.base_url_for("eu-central-1"))
    with pytest.raises(recall.RecallAuthError, match="belongs to the region"):
        eu.list_zoom_oauth_apps()


def test_firewall_403_for_localhost_urls(client):
    with pytest.raises(recall.RecallFirewallError, match="PUBLIC_BASE_URL"):
        client.create_bot(
            {"meeting_url": "https://zoom.us/j/123456789", "zoom": {"zak_url": "http://localhost:8000/x"}}
        )


def test_400_shows_recalls_detail(client):
    with pytest.raises(recall.RecallError, match="meeting_url: \\['Invalid meeting URL.'\\]"):
        client.create_bot({"meeting_url": "https://example.com/meeting"})


def test_429_and_507_are_retried_honouring_retry_after(client, fake_recall):
    fake_recall.configure(fail_next=[429, 507, 503], retry_after="0")
    bot = client.create_bot({"meeting_url": "https://zoom.us/j/123456789"})
    assert bot["id"]
    assert len([r for r in fake_recall.requests_log if r["path"].endswith("/bot/")]) == 4


def test_retries_give_up_with_the_last_error(fake_recall):
    fake_recall.configure(fail_next=[503] * 5, retry_after="0")
    started = time.monotonic()
    with pytest.raises(recall.RecallRetryableError):
        recall.RecallClient(max_attempts=3).list_credentials()
    assert time.monotonic() - started < 3


def test_507_without_retry_after_waits_thirty_seconds(fake_recall):
    fake_recall.configure(fail_next=[507], retry_after="")
    with pytest.raises(recall.RecallRetryableError) as caught:
        recall.RecallClient(max_attempts=2, max_wait=5).create_bot({"meeting_url": "https://zoom.us/j/123456789"})
    assert caught.value.retry_after == 30.0


@responses.activate
def test_exact_url_auth_header_and_json_body(settings):
    settings.RECALL_API_BASE_URL = "https://eu-central-1.recall.test"
    responses.post(
        "https://eu-central-1.recall.test/api/v2/zoom-oauth-credentials/",
        status=201,
        json={"id": "cred-1", "status": "healthy"},
        match=[
            responses.matchers.header_matcher({"Authorization": "Token key-123"}),
            responses.matchers.json_params_matcher(
                {"oauth_app": "app-1", "access_token_callback_url": "https://b.example/cb?auth_token=s"}
            ),
        ],
    )
    body = recall.RecallClient(api_key="key-123").create_credential_customer_managed(
        oauth_app="app-1", access_token_callback_url="https://b.example/cb?auth_token=s"
    )
    assert body["id"] == "cred-1"


@responses.activate
def test_recall_managed_credential_sends_the_code_and_verifier(settings):
    settings.RECALL_API_BASE_URL = "https://us-west-2.recall.test"
    responses.post(
        "https://us-west-2.recall.test/api/v2/zoom-oauth-credentials/",
        status=201,
        json={"id": "cred-2"},
        match=[
            responses.matchers.json_params_matcher(
                {
                    "oauth_app": "app-1",
                    "authorization_code": {"code": "C", "redirect_uri": "https://b/cb/", "code_verifier": "V"},
                }
            )
        ],
    )
    recall.RecallClient(api_key="k").create_credential_recall_managed(
        oauth_app="app-1", code="C", redirect_uri="https://b/cb/", code_verifier="V"
    )
