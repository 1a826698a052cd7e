"""Waiting on another process: ask again until the answer is truthy or the time is up."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(predicate: Callable[[], T], timeout: float, interval: float = 0.2) -> T:
    """The first truthy answer of `predicate`, or its last answer once `timeout` seconds passed."""
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
