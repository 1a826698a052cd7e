"""The one retry policy: exponential backoff with jitter, never sooner than the remote asked."""

import random


def backoff(attempt: int, *, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds before the next try after try number `attempt` (counting from 1). The remote's
    Retry-After when it gave one; else base · 2^(attempt-1), at most `cap`, spread over its upper
    half so that a herd of retries does not come back at once."""
    if retry_after is not None:
        return retry_after
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not secrecy
