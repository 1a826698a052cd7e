"""A small threaded HTTP server with regex routes, shared by the fake Zoom and fake Recall."""

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}

    def json(self):
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def basic_auth(self) -> tuple[str, str] | None:
        value = self.header("authorization")
        if not value.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        except ValueError:
            return None
        return user, password


@dataclass
class Response:
    status: int = 200
    body: bytes | str | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # A dribbled answer: the status line and headers go out at head_at, the body at body_at
    # (time.monotonic() values; None: at once).
    head_at: float | None = None
    body_at: float | None = None

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict | list):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/html; charset=utf-8"
        return self.body or b"", "application/octet-stream"


def json_response(status: int, body) -> Response:
    return Response(status=status, body=body)


def _sleep_until(moment: float | None) -> None:
    if moment is not None:
        time.sleep(max(0.0, moment - time.monotonic()))


# A handler's answer that makes the server close the connection without a response: the work
# was done, the answer is lost (what a client sees when a gateway or the network drops it).
DROP = Response(status=0)


class FakeServer:
    """Subclasses add routes with self.route(method, pattern, handler)."""

    name = "fake"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.routes: list[tuple[str, re.Pattern, callable]] = []
        self.lock = threading.RLock()
        self.latency = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, the body waits for the
            # client's delayed ACK (40 ms on Linux) on every kept-alive call. Zoom does not.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                parsed = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command,
                    path=parsed.path,
                    query={k: v[0] for k, v in parse_qs(parsed.query, keep_blank_values=True).items()},
                    raw_query=parsed.query,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                response = server.dispatch(request)
                if response.status == 0:
                    self.close_connection = True
                    return
                payload, content_type = response.encoded()
                _sleep_until(response.head_at)
                self.send_response(response.status)
                headers = {"Content-Type": content_type, **response.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if response.body_at is not None:
                    self.wfile.flush()
                    _sleep_until(response.body_at)
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, pattern: str, handler) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    def dispatch(self, request: Request) -> Response:
        if self.latency:
            time.sleep(self.latency)
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                request.params = match.groupdict()
                try:
                    return handler(request)
                except Exception as exc:  # a bug in the fake must show, not hang the client
                    return json_response(500, {"fake_error": f"{type(exc).__name__}: {exc}"})
        return json_response(404, {"detail": "Not found."})

    def start(self) -> "FakeServer":
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=self.name, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
