"""A token callback's budget counts from the request's arrival in the web process, not from its
view: time a busy host spends before the view is inside the 5 s Recall waits.

The broker is served over real HTTP by a WSGI server in this process: the project's arrival stamp
outermost (as brokerproject.wsgi has it), then a busy host that gets to the request late (a
thread waiting for the CPU), then Django. The fake Zoom mints in 2.5 s."""

import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
from django.core.wsgi import get_wsgi_application

from brokerproject.arrival import ARRIVED_AT, stamp_arrival
from tests.zoomauth.test_callbacks import path_of
from zoomauth.models import CallbackLog

pytestmark = pytest.mark.django_db(transaction=True)

MINT_SECONDS = 2.5


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def busy_host(app, *, held: float):
    """The process has the request but reaches Django `held` seconds later."""

    def late(environ, start_response):
        time.sleep(held)
        return app(environ, start_response)

    return late


@pytest.fixture
def served(connection, settings):
    settings.CALLBACK_TIME_BUDGET = 3.8
    servers = []

    def serve(*, held: float) -> str:
        app = stamp_arrival(busy_host(get_wsgi_application(), held=held))
        server = make_server("127.0.0.1", 0, app, server_class=ThreadingServer, handler_class=Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def audited(kind: str) -> CallbackLog:
    deadline = time.monotonic() + 10
    while not (row := CallbackLog.objects.filter(kind=kind).first()):
        assert time.monotonic() < deadline, "no audit row"
        time.sleep(0.05)
    return row


def test_a_callback_that_reaches_its_view_at_once_waits_for_a_slow_mint(served, connection, fake_zoom):
    fake_zoom.configure(mint_answer_delay=MINT_SECONDS)
    response = requests.get(served(held=0.0) + path_of(connection.zak_url), timeout=10)
    assert response.status_code == 200 and response.text
    assert audited("zak").status_code == 200


def test_time_before_the_view_counts_against_the_budget(served, connection, fake_zoom):
    """2 s before the view and a 2.5 s mint: waiting for the mint would answer Recall after its
    5 s. The callback gives up within its budget from arrival and says when to come back."""
    fake_zoom.configure(mint_answer_delay=MINT_SECONDS)
    response = requests.get(served(held=2.0) + path_of(connection.zak_url), timeout=10)
    assert response.status_code in (502, 503), response.text  # Zoom's answer did not come within what was left
    assert int(response.headers["Retry-After"]) > 0 and "did not answer within" in response.text
    row = audited("zak")
    assert row.status_code == response.status_code and "did not answer within" in row.outcome
    assert row.latency_ms >= 2000  # the audit counts from arrival too: the held time is in it


def test_the_application_stamps_every_request_on_arrival():
    from brokerproject.wsgi import application

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/healthz",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": __import__("io").BytesIO(b""),
        "wsgi.errors": __import__("io").StringIO(),
    }
    before = time.monotonic()
    body = b"".join(application(environ, lambda status, headers, exc_info=None: None))
    assert body and before <= environ[ARRIVED_AT] <= time.monotonic()
