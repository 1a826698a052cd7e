"""What a hostile or stale caller may cost: bad input is a 4xx naming it, a locked-out caller costs
no database read, stale URLs never lock Recall's address out for others, the audit stays bounded."""

import logging
import uuid

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY

from tests.conftest import connect_via_fake_zoom
from tests.zoomauth.test_callbacks import assert_bare_token, path_of, signed_headers
from tests.zoomauth.test_throttles_and_redis import with_rates
from zoomauth.models import CallbackLog, ZoomConnection
from zoomauth.services import connection_rotate_callback_secret

pytestmark = pytest.mark.django_db(transaction=True)

LOCKED_OUT = b"Too many failed attempts from this address."


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def signing_on(settings):
    from tests.conftest import WHSEC

    settings.RECALL_VERIFICATION_SECRET = WHSEC
    return settings


@pytest.fixture
def bob(connection, client, user, fake_zoom):
    client.force_login(user)
    assert connect_via_fake_zoom(client, fake_zoom, zoom_user_id="zu_bob").status_code == 200
    client.logout()
    return ZoomConnection.objects.get(zoom_user_id="zu_bob")


# --- bad input -------------------------------------------------------------------------------------


def test_1500_query_parameters_are_a_400_naming_the_problem(anon, connection, caplog):
    url = path_of(connection.zak_url) + "&" + "&".join("x" for _ in range(1500))  # about 3 KB
    with caplog.at_level(logging.ERROR):
        response = anon.get(url)
    assert response.status_code == 400
    assert b"Too many query parameters" in response.content
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback
    assert_bare_token(anon.get(path_of(connection.zak_url)))  # the same address goes on


@pytest.mark.parametrize("method", ["options", "post", "put", "patch", "delete"])
def test_any_method_but_get_or_head_is_a_405_neither_audited_nor_counted(anon, connection, method):
    served = sample("broker_token_callbacks_total", kind="access-token", status="200")
    refused = sample("broker_token_callbacks_total", kind="access-token", status="405")
    response = getattr(anon, method)(path_of(connection.access_token_callback_url))
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert connection.access_token not in response.content.decode()
    assert not CallbackLog.objects.exists()
    assert sample("broker_token_callbacks_total", kind="access-token", status="200") == served
    assert sample("broker_token_callbacks_total", kind="access-token", status="405") == refused
    assert anon.head(path_of(connection.access_token_callback_url)).status_code == 200


# --- lockouts ----------------------------------------------------------------------------------------


@pytest.fixture
def failures_counted_per_day(settings):
    """The lockout's window as a day, not a minute: a thousand requests on a loaded machine can
    outlast a minute window, and a new window rightly lets the caller try again."""
    with_rates(settings, callback_failures="20/day")


@pytest.mark.usefixtures("one_window")
def test_2000_unsigned_requests_from_a_locked_out_address_cost_no_database_read(
    anon, connection, failures_counted_per_day
):
    guesses = [anon.get(f"/recall/callbacks/zak/?connection={uuid.uuid4()}&auth_token=guess") for _ in range(20)]
    assert [r.status_code for r in guesses] == [401] * 20  # ids nobody was given: the address is locked out
    good = path_of(connection.zak_url)
    with CaptureQueriesContext(db) as queries:
        answers = [
            anon.get(good if n % 2 else f"/recall/callbacks/zak/?connection={uuid.uuid4()}&auth_token=guess")
            for n in range(2000)
        ]
    assert {r.status_code for r in answers} == {429}
    assert all(r.content == LOCKED_OUT and r["Retry-After"] for r in answers)
    # What is left is the audit of each answer (CALLBACK_AUDIT_FLUSH_SECONDS=0 in tests: written at
    # once, in this thread, in a transaction of its own): writes, not a single read.
    reads = [
        q["sql"]
        for q in queries.captured_queries
        if "SELECT" in q["sql"].upper() or "zoomauth_zoomconnection" in q["sql"] or "callbackgrant" in q["sql"]
    ]
    assert reads == [], reads[:3]
    assert queries.captured_queries  # the capture saw this thread's queries (the audit's)
    assert CallbackLog.objects.filter(status_code=429).count() == 2000


@pytest.mark.parametrize("signed", [False, True])
def test_1000_fetches_with_a_rotated_secret_never_lock_out_another_connection(
    anon, connection, bob, signing_on, signed, failures_counted_per_day
):
    if not signed:
        signing_on.RECALL_VERIFICATION_SECRET = ""  # no verification secret: nothing is signed
    stale = path_of(connection.access_token_callback_url)
    connection_rotate_callback_secret(connection=connection)  # a bot launched before keeps this URL

    def headers(n):
        return signed_headers(msg_id=f"msg_{n}") if signed else {}

    statuses = [anon.get(stale, **headers(n)).status_code for n in range(1000)]
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}  # this URL, from here: locked out
    assert_bare_token(anon.get(path_of(bob.access_token_callback_url), **headers("bob")))
    assert_bare_token(anon.get(path_of(bob.zak_url), **headers("bob-zak")))


# --- the audit's bound -------------------------------------------------------------------------------


def test_audit_rows_beyond_the_queue_bound_are_dropped_and_counted_in_metrics(anon, connection, client, settings):
    from zoomauth.audit import writer

    settings.CALLBACK_AUDIT_FLUSH_SECONDS = 1.0
    settings.CALLBACK_AUDIT_MAX_QUEUED = 0  # a full queue
    settings.METRICS_TOKEN = "metrics-token"
    before = sample("broker_callback_audit_dropped_total")
    for _ in range(5):
        assert_bare_token(anon.get(path_of(connection.access_token_callback_url)))
    writer.flush()
    assert sample("broker_callback_audit_dropped_total") == before + 5
    assert not CallbackLog.objects.exists()
    scrape = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token").content.decode()
    assert f"broker_callback_audit_dropped_total {before + 5}" in scrape
