import logging

from brokerproject.logging import KeyValueFormatter, MaskSecretsFilter


def render(record: logging.LogRecord) -> str:
    MaskSecretsFilter().filter(record)
    return KeyValueFormatter().format(record)


def make_record(name: str, msg: str, args) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)


def test_django_server_access_line_is_masked():
    record = make_record(
        "django.server",
        '"%s" %s %s',
        ("GET /recall/callbacks/zak/?connection=abc&auth_token=S3cretValue HTTP/1.1", "200", "12"),
    )
    line = render(record)
    assert "S3cretValue" not in line
    assert "auth_token=***" in line and "connection=abc" in line


def test_gunicorn_access_line_is_masked():
    atoms = {"h": "10.0.0.1", "r": "GET /zoom/callback/?code=ABCDEF&state=XYZ123 HTTP/1.1", "s": "200"}
    record = make_record("gunicorn.access", '%(h)s "%(r)s" %(s)s', ())
    record.args = atoms
    line = render(record)
    assert "ABCDEF" not in line and "XYZ123" not in line
    assert "code=***" in line and "state=***" in line


def test_authorization_headers_and_extras_are_masked():
    record = make_record("zoomauth", "calling %s", ("Authorization: Bearer eyJhbGciOi.payload.sig",))
    record.url = "https://zoom.us/oauth/token?refresh_token=RT-123"
    line = render(record)
    assert "eyJhbGciOi" not in line and "RT-123" not in line
    assert line.startswith("ts=") and "level=info" in line and "logger=zoomauth" in line


def test_plain_fields_are_kept():
    line = render(make_record("x", "status_code=%s meeting_id=%s", (404, "123456789")))
    assert "status_code=404" in line and "meeting_id=123456789" in line
