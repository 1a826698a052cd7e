import logging
from datetime import timedelta

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


def _gunicorn_access_lines(path: str) -> list[logging.LogRecord]:
    from gunicorn.config import Config

    from brokerproject.gunicorn_logging import BrokerLogger

    config = Config()
    config.set("accesslog", "-")
    config.set("logger_class", "brokerproject.gunicorn_logging.BrokerLogger")
    server_log = BrokerLogger(config)
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record)

    server_log.access_log.addHandler(Keep())

    class Answer:
        status = "200 OK"
        headers = ()
        sent = 12

    class Request:
        headers = ()

    environ = {
        "PATH_INFO": path,
        "RAW_URI": path,
        "QUERY_STRING": "",
        "REQUEST_METHOD": "GET",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    server_log.access(Answer(), Request(), environ, timedelta(milliseconds=3))
    return seen


def test_gunicorn_leaves_the_access_line_of_a_token_callback_to_the_callback():
    assert _gunicorn_access_lines("/recall/callbacks/zak/") == []  # the view writes its own line
    assert len(_gunicorn_access_lines("/api/connections/")) == 1  # every other request keeps one
