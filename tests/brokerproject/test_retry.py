"""The one retry policy every loop waits by (brokerproject/retry.py)."""

import time

import pytest

from brokerproject.retry import RetryPolicy, backoff
from recallbots.recall import RecallClient, RecallRetryableError

SAMPLES = 200


def test_waits_double_from_the_base_up_to_the_cap_within_their_jitter():
    policy = RetryPolicy(base=0.5, cap=8.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (20, 8.0)]:
        waits = [policy.wait(attempt) for _ in range(SAMPLES)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits), (attempt, min(waits), max(waits))
        assert max(waits) - min(waits) > ceiling / 10  # spread out, not one value for the whole herd


def test_retry_after_is_honoured_as_given_even_beyond_the_cap():
    policy = RetryPolicy(base=0.2, cap=1.0)
    assert policy.wait(1, 30.0) == 30.0
    assert policy.wait(3, 0.0) == 0.0  # "now" is honoured too, not replaced by a backoff
    assert backoff(1, base=0.2, cap=1.0, retry_after=30.0) == 30.0


def test_tries_end_at_the_policys_attempts_or_when_the_wait_outlasts_the_time_left():
    policy = RetryPolicy(base=0.5, cap=8.0, attempts=3)
    assert policy.retries(1, 0.5) and policy.retries(2, 1.0)
    assert not policy.retries(3, 0.1)  # the third try was the last
    assert not policy.retries(1, 2.0, time_left=1.9)  # the caller's budget cannot hold the wait
    assert policy.retries(1, 2.0, time_left=2.0)
    unbounded = RetryPolicy(base=0.2, cap=1.0)  # as many tries as the caller's time allows
    assert unbounded.retries(1000, 1.0, time_left=1.5) and not unbounded.retries(1000, 1.0, time_left=0.4)


def test_the_recall_client_waits_and_stops_as_its_policy_says(fake_recall):
    """A loop that computed its own waits or tries would fail this: its default would try 4 times
    and wait up to 8 s; this policy allows 3 tries with waits of 0.1-0.2 s."""
    fake_recall.configure(fail_next=[503] * 10, retry_after="")
    client = RecallClient(retry=RetryPolicy(base=0.2, cap=0.2, attempts=3))
    started = time.monotonic()
    with pytest.raises(RecallRetryableError):
        client.list_credentials()
    elapsed = time.monotonic() - started
    assert len([r for r in fake_recall.requests_log if "zoom-oauth-credentials" in r["path"]]) == 3
    assert 2 * 0.1 <= elapsed < 2 * 0.2 + 1.5  # two waits of 0.1-0.2 s between three tries
