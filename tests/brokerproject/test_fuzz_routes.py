"""Every URL pattern, with malformed methods, parameters, bodies and headers: never a 5xx.

Patterns are read from the resolver, so a route added later is fuzzed too. Requests go through
the whole stack (middleware, DRF, admin) as an anonymous caller and as staff.
"""

import re
import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
BODIES = [
    (b"", "application/json"),
    (b"[" * 50_000 + b"]" * 50_000, "application/json"),
    (b'{"meeting_url": "\\u0000", "connection": "\\ud800", "event": "x\\u0000"}', "application/json"),
    (b"\xff\xfe not utf-8", "application/json"),
    (b'{"a": 1', "application/json"),
    (b"a=%00&b=%ff&connection=not-a-uuid", "application/x-www-form-urlencoded"),
    (b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n\x00\r\n', "multipart/form-data; boundary=x"),
]
QUERIES = [
    "",
    "?connection=%00&auth_token=%ff&meeting_id=" + "9" * 300,
    "?app=not-a-uuid&page=-1&status=%00&external_user_id=" + "x" * 2000,
    "?q=%F0%28%8C%28&o=999&p=abc&_changelist_filters=%00",
]
HEADERS = [
    {},
    {
        "HTTP_AUTHORIZATION": "Bearer ztb_\x00garbage",
        "HTTP_X_FORWARDED_FOR": "not-an-ip, 300.1.1.1",
        "HTTP_WEBHOOK_ID": "x",
        "HTTP_WEBHOOK_TIMESTAMP": "notanumber",
        "HTTP_WEBHOOK_SIGNATURE": "v1,@@@",
        "HTTP_X_ZM_REQUEST_TIMESTAMP": "-1",
        "HTTP_X_ZM_SIGNATURE": "v0=zz",
        "HTTP_ACCEPT": "application/xml;q=2, */*;q=-1",
    },
]


def _concrete(pattern: str, ids: dict) -> str:
    pattern = re.sub(r"<uuid:(\w+)>", lambda m: ids.get(m.group(1), str(uuid.uuid4())), pattern)
    pattern = re.sub(r"<(?:int|path):\w+>", "1", pattern)
    pattern = re.sub(r"<slug:\w+>", "zak", pattern)
    pattern = re.sub(r"<(?:str:)?\w+>", "x", pattern)
    # Regex patterns (the admin's app index): the first alternative of each group.
    pattern = re.sub(r"\(\?P<\w+>([^|)]*)[^)]*\)", r"\1", pattern)
    return "/" + pattern.replace("^", "").replace("$", "").replace("\\", "")


def _patterns(resolver=None, prefix: str = ""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


@pytest.fixture
def paths(connection, zoom_app):
    ids = {"public_id": str(connection.public_id), "app_public_id": str(zoom_app.public_id)}
    found = sorted({_concrete(p, ids) for p in _patterns()})
    assert len(found) > 50  # the admin's routes are in: the walk found the project
    return found


def _server_error(path: str, status: int) -> bool:
    # /readyz says 503 by design while beat has not beaten (no beat runs in this test).
    return status >= 500 and not (path == "/readyz" and status == 503)


def test_no_route_answers_5xx_to_malformed_requests(paths, staff, fake_recall, settings):
    settings.RECALL_VERIFICATION_SECRET = "whsec_" + "cmVjYWxsLXZlcmlmaWNhdGlvbi1zZWNyZXQtMzJieQ=="
    anonymous = Client(raise_request_exception=False)
    signed_in = Client(raise_request_exception=False)
    signed_in.force_login(staff)
    failures = []
    for path in paths:
        for index, method in enumerate(METHODS):
            body, content_type = BODIES[index % len(BODIES)]
            for client in (anonymous, signed_in):
                for query, headers in zip(QUERIES, HEADERS * 2, strict=False):
                    response = client.generic(method, path + query, body, content_type=content_type, **headers)
                    if _server_error(path, response.status_code):
                        failures.append(f"{method} {path}{query[:40]} → {response.status_code}")
        for body, content_type in BODIES:
            response = anonymous.post(path, body, content_type=content_type)
            if _server_error(path, response.status_code):
                failures.append(f"POST {path} body {body[:30]!r} → {response.status_code}")
    assert not failures, "\n".join(failures[:40])
