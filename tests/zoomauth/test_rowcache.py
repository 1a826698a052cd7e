"""The callbacks' row cache: a row is read once while nothing changes it, and dropped the moment
PostgreSQL notifies a change, whoever made it; without a live listener every callback reads."""

import hashlib
import secrets
import time
from datetime import timedelta

import pytest
from django.db import connection as db
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.zoomauth.test_callbacks import assert_bare_token, path_of
from zoomauth import rowcache
from zoomauth.models import CallbackGrant, ZoomConnection

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def row_cache(settings):
    settings.CALLBACK_ROW_CACHE_SECONDS = 2
    rowcache.rows.forget_all()
    wait_for(rowcache.rows.usable)  # the listener is up
    yield rowcache.rows
    rowcache.rows.stop()  # its database connection closes before the test database is dropped


def row_reads(anon, url) -> tuple[int, object]:
    with CaptureQueriesContext(db) as queries:
        response = anon.get(url)
    return sum("zoomauth_zoomconnection" in q["sql"] and q["sql"].startswith("SELECT") for q in queries), response


def test_a_callback_reads_its_row_once_while_nothing_changes_it(anon, connection, row_cache):
    url = path_of(connection.access_token_callback_url)
    reads, first = row_reads(anon, url)
    assert reads == 1 and assert_bare_token(first) == connection.access_token
    reads, again = row_reads(anon, url)
    assert reads == 0 and assert_bare_token(again) == connection.access_token


def test_a_rotated_secret_is_refused_as_soon_as_its_notice_arrives(anon, connection, row_cache):
    old = path_of(connection.zak_url)
    assert anon.get(old).status_code == 200  # the row is now held
    key = f"connection:{connection.public_id}"
    assert row_cache.get(key) is not None
    connection.rotate_callback_secret()
    connection.save()  # as any process would: the trigger notifies every listener
    wait_for(lambda: row_cache.get(key) is None, timeout=5)
    assert anon.get(old).status_code == 401
    assert assert_bare_token(anon.get(path_of(connection.zak_url)))


def test_a_revoke_made_by_a_queryset_update_is_seen(anon, connection, row_cache):
    url = path_of(connection.access_token_callback_url)
    assert anon.get(url).status_code == 200
    ZoomConnection.objects.filter(pk=connection.pk).update(status=ZoomConnection.Status.REVOKED)  # no signal
    wait_for(lambda: row_cache.get(f"connection:{connection.public_id}") is None, timeout=5)
    assert anon.get(url).status_code != 200


def test_a_bot_url_that_ended_is_refused_once_its_notice_arrives(anon, connection, row_cache):
    raw = secrets.token_urlsafe(32)
    grant = CallbackGrant.objects.create(
        connection=connection,
        secret_hash=hashlib.sha256(raw.encode()).hexdigest(),
        kinds=["zak"],
        holder="bot-1",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    url = path_of(grant.callback_url("zak", raw))
    assert anon.get(url).status_code == 200, anon.get(url).content
    CallbackGrant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    wait_for(lambda: row_cache.get(f"grant:{grant.public_id}") is None, timeout=5)
    response = anon.get(url)
    assert response.status_code == 401 and b"ended" in response.content


def test_a_read_that_overlaps_a_notice_is_not_kept(row_cache):
    mark = row_cache.mark()
    row_cache.changed(987654)  # a notice arrives while the row is being read
    row_cache.put("connection:x", 987654, ("values",), mark)
    assert row_cache.get("connection:x") is None
    row_cache.put("connection:x", 987654, ("values",), row_cache.mark())
    assert row_cache.get("connection:x") == (987654, ("values",))


def test_when_the_listener_is_cut_off_every_row_is_forgotten(anon, connection, row_cache):
    url = path_of(connection.access_token_callback_url)
    assert anon.get(url).status_code == 200
    key = f"connection:{connection.public_id}"
    assert row_cache.get(key) is not None
    with connections["default"].cursor() as cursor:  # PostgreSQL restarts, a failover, a network cut
        # This database's listener only: another test worker's, or a running broker's, is not ours.
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'broker-callback-rows' AND datname = current_database()"
        )
    wait_for(lambda: row_cache.get(key) is None, timeout=5)  # notices may have been lost: nothing kept
    wait_for(row_cache.usable, timeout=10)  # and it listens again
    assert anon.get(url).status_code == 200


@pytest.mark.django_db(transaction=False)
def test_inside_a_transaction_no_row_is_kept(anon, connection, settings):
    settings.CALLBACK_ROW_CACHE_SECONDS = 2
    url = path_of(connection.access_token_callback_url)
    assert [row_reads(anon, url)[0] for _ in range(2)] == [1, 1]  # a row that may be rolled back
    rowcache.rows.stop()
