"""One total deadline for a whole HTTP request, for the Zoom client (zoomauth.zoom).

requests' timeout bounds the connect and each read separately, and name resolution not at all:
an answer that dribbles in can take any time. A refresh must end by a deadline its lease
outlives, so it runs in a thread of its own while the caller waits on a monotonic deadline.
At the deadline the caller gives up, the request's sockets are shut down (which wakes a
blocked read; close() alone would not) and a connection not yet made is refused before
anything is sent: a send still stuck in name resolution never reaches Zoom later. Each such
request has its own session, so no kept-alive connection escapes that check.
"""

import socket
import threading

import requests
import urllib3

from brokerproject import http


class _DeadlinePassed(ConnectionAbortedError):
    pass


_deadline_local = threading.local()


class _Deadline:
    def __init__(self):
        self.lock = threading.Lock()
        self.passed = False
        self.sockets: list = []
        self.outcome: tuple | None = None
        self.done = threading.Event()

    def admit(self, sock) -> None:
        """A connection is made (resolved, connected, TLS done): go on only before the deadline."""
        with self.lock:
            if not self.passed:
                self.sockets.append(sock)
                return
        _shut(sock)
        raise _DeadlinePassed("the deadline passed before the request was sent")

    def pass_now(self) -> None:
        with self.lock:
            self.passed = True
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            _shut(sock)

    def deliver(self, outcome: tuple) -> None:
        with self.lock:
            if not self.passed:
                self.outcome = outcome
        self.done.set()


def _shut(sock) -> None:
    try:
        # The plain socket's shutdown, also for a TLS socket: it only needs the descriptor.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, TypeError):
        pass


class _AdmittedHTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        deadline = getattr(_deadline_local, "deadline", None)
        if deadline is not None:
            deadline.admit(self.sock)


class _AdmittedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        deadline = getattr(_deadline_local, "deadline", None)
        if deadline is not None:
            deadline.admit(self.sock)


class _AdmittedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _AdmittedHTTPConnection


class _AdmittedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _AdmittedHTTPSConnection


_ADMITTED_POOLS = {"http": _AdmittedHTTPPool, "https": _AdmittedHTTPSPool}


class _AdmittedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _ADMITTED_POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # HTTP(S) proxies; SOCKS keeps its own pools
            manager.pool_classes_by_scheme = _ADMITTED_POOLS
        return manager


def _deadline_session() -> requests.Session:
    made = http.Session()
    made.headers["User-Agent"] = http.USER_AGENT
    adapter = _AdmittedAdapter(pool_connections=1, pool_maxsize=1)
    for scheme in ("https://", "http://"):
        made.mount(scheme, adapter)
    return made


def request_by_deadline(method: str, url: str, *, total: float, **kwargs) -> requests.Response:
    """The whole request (resolution, connect, TLS, every read, the body) within `total` seconds,
    or requests.Timeout, after which nothing of it is sent and its answer is never used."""
    deadline = _Deadline()

    def run() -> None:
        _deadline_local.deadline = deadline
        session = _deadline_session()
        outcome: tuple[requests.Response | None, BaseException | None]
        try:
            response = session.request(method, url, timeout=(total, total), **kwargs)
            response.content  # noqa: B018 - the body is part of the deadline
            outcome = (response, None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as is
            outcome = (None, exc)
        finally:
            session.close()
        deadline.deliver(outcome)

    threading.Thread(target=run, name="zoom-deadline", daemon=True).start()
    deadline.done.wait(total)
    deadline.pass_now()
    if deadline.outcome is None:  # not delivered before the deadline passed
        raise requests.Timeout(f"no complete answer within {total:.1f}s")
    response, error = deadline.outcome
    if error is not None:
        raise error
    return response
