"""Outbound HTTP for the clients (Zoom, Recall, webhook forwarding): one way to make a session
and one reading of Retry-After. Timeouts stay explicit at each call."""

import email.utils
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

if TYPE_CHECKING:
    # What Session.merge_environment_settings returns, as types-requests names it.
    from requests.sessions import _Settings

USER_AGENT = "zoom-token-broker/1.0"


class Session(requests.Session):
    """requests.Session that reads the environment once per origin, not on every request.

    With trust_env (the default, kept: deployments behind an egress proxy set HTTPS_PROXY and
    NO_PROXY, or REQUESTS_CA_BUNDLE), requests works out the proxies and CA bundle from
    os.environ for every request: a sixth of the CPU of an OBF or join-token callback, which
    makes one Zoom call. A running process's environment does not change, so the answer for an
    origin (scheme, host, port) is kept; a request that passes its own proxies is worked out
    as requests always does.
    """

    def __init__(self):
        super().__init__()
        self._environment: dict[tuple, _Settings] = {}
        self._environment_lock = threading.Lock()

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        if proxies or not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert if not isinstance(cert, list) else tuple(cert))
        found = self._environment.get(key)
        if found is None:
            found = super().merge_environment_settings(url, {}, stream, verify, cert)
            with self._environment_lock:
                if len(self._environment) > 256:  # a few origins in practice; never unbounded
                    self._environment.clear()
                self._environment[key] = found
        return {**found, "proxies": dict(found["proxies"])}


def session(*, pool_maxsize: int = 64) -> requests.Session:
    """A keep-alive session. Every server thread of a process may be waiting on the same host at
    once: keep that many connections (requests' default of 10 makes the rest reconnect, TLS
    included, on every call)."""
    made = Session()
    made.headers["User-Agent"] = USER_AGENT
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize)
    for scheme in ("https://", "http://"):
        made.mount(scheme, adapter)
    return made


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After in seconds, from either delta-seconds or an HTTP date; None when absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))
