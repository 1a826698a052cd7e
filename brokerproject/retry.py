"""The one retry policy: exponential backoff with jitter, never sooner than the remote asked.

Every retry loop waits by it: a loop that sleeps between tries holds a RetryPolicy (its base, cap
and number of tries) beside it; a task that is retried later computes its countdown with
backoff() itself.
"""

import random
from dataclasses import dataclass


def backoff(attempt: int, *, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds before the next try after try number `attempt` (counting from 1). The remote's
    Retry-After when it gave one; else base · 2^(attempt-1), at most `cap`, spread over its upper
    half so that a herd of retries does not come back at once."""
    if retry_after is not None:
        return retry_after
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not secrecy


@dataclass(frozen=True)
class RetryPolicy:
    """How a loop retries in process: waits from backoff(base, cap), at most `attempts` tries
    (None: as many as the caller's own time allows)."""

    base: float
    cap: float
    attempts: int | None = None

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after try number `attempt` failed (the remote's Retry-After if given)."""
        return backoff(attempt, base=self.base, cap=self.cap, retry_after=retry_after)

    def retries(self, attempt: int, wait: float, *, time_left: float | None = None) -> bool:
        """Whether another try may follow try number `attempt` after `wait` seconds: tries are
        left, and the wait fits in `time_left` (what the caller's budget still allows) when given."""
        if self.attempts is not None and attempt >= self.attempts:
            return False
        return time_left is None or wait <= time_left
