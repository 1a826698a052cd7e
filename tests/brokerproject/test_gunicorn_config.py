"""docker/gunicorn.conf.py trusts forwarding headers (X-Forwarded-Proto, SCRIPT_NAME) from the
proxy's address only: by default loopback, where the proxy in front of the published port is."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FORWARDED_ALLOW_IPS"}
    env.update(PORT=str(port), WEB_CONCURRENCY="1", WEB_THREADS="2", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "docker/gunicorn.conf.py",
            "tests.brokerproject.gunicorn_echo_app:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port
    process.terminate()
    process.wait(timeout=30)


def seen_by_the_app(port: int, *, from_address: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(from_address, 0))
    conn.request("GET", "/recall/admin/", headers={"SCRIPT_NAME": "/recall", "X-Forwarded-Proto": "https"})
    body = conn.getresponse().read()
    conn.close()
    return json.loads(body)


def test_forwarding_headers_count_only_from_the_proxys_address(gunicorn):
    # Any other client reaching gunicorn (127.0.0.2 stands for one) cannot move the path around
    # the proxy's rules nor claim HTTPS.
    assert seen_by_the_app(gunicorn, from_address="127.0.0.2") == {
        "SCRIPT_NAME": "",
        "PATH_INFO": "/recall/admin/",
        "wsgi.url_scheme": "http",
    }
    assert seen_by_the_app(gunicorn, from_address="127.0.0.1") == {  # the proxy, on loopback
        "SCRIPT_NAME": "/recall",
        "PATH_INFO": "/admin/",
        "wsgi.url_scheme": "https",
    }
