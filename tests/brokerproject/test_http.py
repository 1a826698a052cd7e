"""The outbound session keeps requests' reading of the environment (proxies, NO_PROXY), once per
origin instead of on every request."""

import pytest
import requests

from brokerproject import http
from fakes.http import FakeServer, json_response


def answering(name: str) -> FakeServer:
    server = FakeServer()
    server.route("GET", "/hello", lambda request: json_response(200, {"from": name}))
    return server.start()


@pytest.fixture
def target_and_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    target, proxy = answering("target"), answering("proxy")  # a forward proxy gets the absolute URL
    yield target, proxy
    target.stop()
    proxy.stop()


def test_a_proxy_from_the_environment_is_used(target_and_proxy, monkeypatch):
    target, proxy = target_and_proxy
    monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
    assert http.session().get(target.base_url + "/hello", timeout=5).json() == {"from": "proxy"}


def test_no_proxy_from_the_environment_is_respected(target_and_proxy, monkeypatch):
    target, proxy = target_and_proxy
    monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert http.session().get(target.base_url + "/hello", timeout=5).json() == {"from": "target"}


def test_the_environment_is_read_once_per_origin(target_and_proxy, monkeypatch):
    target, proxy = target_and_proxy
    reads = []
    original = requests.sessions.get_environ_proxies
    monkeypatch.setattr(
        requests.sessions, "get_environ_proxies", lambda *args, **kw: reads.append(args) or original(*args, **kw)
    )
    session = http.session()
    for _ in range(5):
        assert session.get(target.base_url + "/hello", timeout=5).status_code == 200
    assert session.get(proxy.base_url + "/hello", timeout=5).status_code == 200
    assert len(reads) == 2  # one per origin, not one per request
    # A request that brings its own proxies is worked out as requests always does.
    assert session.get(target.base_url + "/hello", proxies={"http": proxy.base_url}, timeout=5).json() == {
        "from": "proxy"
    }
