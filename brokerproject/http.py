"""Outbound HTTP for the clients (Zoom, Recall, webhook forwarding): one way to make a session
and one reading of Retry-After. Timeouts stay explicit at each call."""

import email.utils
import time

import requests

USER_AGENT = "zoom-token-broker/1.0"


def session(*, pool_maxsize: int = 64) -> requests.Session:
    """A keep-alive session. Every server thread of a process may be waiting on the same host at
    once: keep that many connections (requests' default of 10 makes the rest reconnect, TLS
    included, on every call)."""
    made = requests.Session()
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
