"""Token callbacks take their own lane through the middleware: none of the session, CSRF,
authentication, messages, clickjacking or axes work, and every guarantee of the view kept."""

import pytest

from tests.zoomauth.test_callbacks import assert_bare_token, path_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_callback_skips_the_middleware_it_never_uses(anon, connection):
    response = anon.get(path_of(connection.access_token_callback_url))
    assert assert_bare_token(response) == connection.access_token
    assert "X-Frame-Options" not in response  # XFrameOptionsMiddleware did not run
    assert "Vary" not in response and not response.cookies  # neither did sessions nor CSRF
    assert response["Cache-Control"] == "no-store"
    page = anon.get("/accounts/login/")
    assert page["X-Frame-Options"] == "DENY"  # every other page still goes the whole way


def test_the_lane_keeps_the_host_check_and_the_views_refusals(anon, connection):
    assert anon.get(path_of(connection.zak_url), HTTP_HOST="evil.example").status_code == 400
    assert anon.get(path_of(connection.zak_url).replace(connection.callback_secret, "x")).status_code == 401
    assert anon.get("/recall/callbacks/nonsense/?connection=x").status_code == 404
    assert anon.get("/recall/callbacks/zak").status_code in (301, 404)  # not a callback path: the full stack


def test_a_wrong_encryption_key_still_stops_callbacks(anon, connection, monkeypatch):
    from cryptography.fernet import Fernet, MultiFernet
    from django.test import Client
    from encrypted_model_fields import fields as encrypted_fields

    assert anon.get(path_of(connection.zak_url)).status_code == 200  # the canary, under the right key
    monkeypatch.setattr(encrypted_fields, "CRYPTER", MultiFernet([Fernet(Fernet.generate_key())]))
    response = Client().get(path_of(connection.zak_url))  # a process started with the wrong key
    assert response.status_code == 503 and b"FIELD_ENCRYPTION_KEY" in response.content


def test_the_one_row_read_loads_what_the_orm_loads(connection):
    """The callback's cursor read (no QuerySet) gives the same values as the ORM, token decrypted."""
    from zoomauth.credentials import HOT_PATH_COLUMNS, HOT_PATH_READ, _credential_from, _read_row
    from zoomauth.models import ZoomConnection

    connection.refresh_from_db()
    read = _credential_from(_read_row(HOT_PATH_READ, connection.public_id), by_grant=False).connection()
    for column in HOT_PATH_COLUMNS:
        assert getattr(read, column) == getattr(connection, column), column
    assert read.access_token and read.token_generation == connection.token_generation
    every_column = {field.attname for field in ZoomConnection._meta.concrete_fields}
    assert read.get_deferred_fields() == every_column - set(HOT_PATH_COLUMNS)


def test_a_callback_writes_one_log_line_without_its_secret(anon, connection, caplog):
    caplog.set_level("INFO")
    bad = path_of(connection.zak_url).replace(connection.callback_secret, "wrong-secret-value")
    assert anon.get(bad).status_code == 401
    assert assert_bare_token(anon.get(path_of(connection.access_token_callback_url)))
    lines = [r for r in caplog.records if r.name in ("zoomauth.callbacks", "django.request")]
    assert [(r.name, r.getMessage(), r.status) for r in lines] == [
        ("zoomauth.callbacks", "token callback", 401),  # not django.request's "Unauthorized: ..." too
        ("zoomauth.callbacks", "token callback", 200),
    ]
    refused, served = lines
    assert refused.kind == "zak" and refused.outcome.startswith("Unknown connection") and served.outcome == ""
    assert served.connection == connection.pk and refused.connection is None
    assert all(connection.callback_secret not in str(r.__dict__) for r in caplog.records)


def no_user_for_callbacks():
    raise AssertionError("a token callback built a DRF user")


def test_a_callback_builds_no_drf_user(anon, connection, settings):
    """The secret is the credential: DRF's per-request AnonymousUser is work a callback skips."""
    from rest_framework.settings import api_settings

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "UNAUTHENTICATED_USER": "tests.zoomauth.test_lane.no_user_for_callbacks",
    }
    api_settings.reload()
    try:
        assert assert_bare_token(anon.get(path_of(connection.access_token_callback_url)))
    finally:
        api_settings.reload()
