"""The sweeps' and the one-try tasks' way onto the queue (brokerproject/celery.py), on the real
Redis broker: what lands on the queue, with what countdown."""

import base64
import json

import pytest

from brokerproject.celery import enqueue_again, enqueue_each
from brokerproject.redis_client import shared_redis

QUEUE = "customer-events"  # where webhooks.tasks.event_delivery_attempt is routed
TASK = "webhooks.tasks.event_delivery_attempt"


@pytest.fixture
def queue():
    client = shared_redis()
    client.delete(QUEUE)
    yield client
    client.delete(QUEUE)


def waiting(client) -> list[tuple[str, list, str | None]]:
    """(task, args, eta) of each message on the queue, oldest first."""
    found = []
    for raw in reversed(client.lrange(QUEUE, 0, -1)):  # kombu pushes left
        message = json.loads(raw)
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        found.append((message["headers"]["task"], args, message["headers"]["eta"]))
    return found


def test_a_sweep_enqueues_one_message_for_each_find_and_counts_them(queue):
    assert enqueue_each(TASK, [7, 8, 9]) == 3
    assert waiting(queue) == [
        (TASK, [7], None),
        (TASK, [8], None),
        (TASK, [9], None),
    ]
    assert enqueue_each(TASK, []) == 0
    assert len(waiting(queue)) == 3


def test_another_try_is_a_new_message_with_the_countdown_and_none_when_done(queue):
    enqueue_again(TASK, 7, None)
    assert waiting(queue) == []
    enqueue_again(TASK, 7, 30.0)
    [(task, args, eta)] = waiting(queue)
    assert (task, args) == (TASK, [7]) and eta is not None  # held by the worker until then, not slept on
