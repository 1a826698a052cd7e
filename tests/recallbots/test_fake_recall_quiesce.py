"""The fake Recall stops cleanly at a test's end: quiesce() waits for the status webhooks on their
way (a test's database is emptied next, and a webhook the broker is still handling holds the
tables the flush must lock: a deadlock seen under load), and a reset's new run hears nothing from
the bots of the one before (their simulation threads go on)."""

import threading
import time

import pytest

from fakes.http import FakeServer, json_response
from fakes.recall import FakeRecall


@pytest.fixture
def receiver():
    server = FakeServer()
    server.received = []

    def hook(req):
        time.sleep(1.0)  # the broker busy with it
        server.received.append(req.body)
        return json_response(200, {})

    server.route("POST", "/hook", hook)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def recall(receiver):
    fake = FakeRecall().start()
    fake.configure(status_webhook_url=receiver.base_url + "/hook")
    yield fake
    fake.stop()


def a_bot(fake: FakeRecall, bot_id: str) -> None:
    change = {"code": "joining_call", "sub_code": None, "created_at": "2026-12-03T10:00:00Z", "message": None}
    fake.bots[bot_id] = {
        **{"id": bot_id, "metadata": {}, "status_changes": [change], "_webhook_ids": ["msg_1"]},
        "_run": fake.run,
    }


def test_quiesce_waits_for_the_webhook_on_its_way_and_then_nothing_is_sent(recall, receiver):
    a_bot(recall, "b1")
    sending = threading.Thread(target=recall.redeliver, args=("b1",))
    sending.start()
    time.sleep(0.3)  # on its way
    assert recall.quiesce(timeout=10)
    assert len(receiver.received) == 1  # answered before quiesce returned
    recall.redeliver("b1")
    assert len(receiver.received) == 1
    sending.join()


def test_a_bot_of_an_earlier_run_sends_nothing_into_the_next(recall, receiver):
    a_bot(recall, "old")
    old = recall.bots["old"]
    recall.reset()
    recall.configure(status_webhook_url=receiver.base_url + "/hook")
    recall._deliver(old, 0)  # its simulation thread going on after the reset
    assert receiver.received == []
    a_bot(recall, "new")
    recall.redeliver("new")
    assert len(receiver.received) == 1
