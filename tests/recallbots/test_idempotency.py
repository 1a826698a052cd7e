"""An Idempotency-Key whose answer could not be stored is never a second bot: its marker went in
before the launch, and a repeat that finds it answers 503 + Retry-After.

The cache is a redis-server of this module's own, so that it can be made to stop taking writes
(CLIENT PAUSE) while the first request's launch is at Recall: the final store then times out,
as it does when Redis hangs or the network to it drops."""

import shutil
import socket
import subprocess
import threading
import time

import pytest
import redis
from django.test import override_settings

from recallbots.models import Bot
from recallbots.views import IDEMPOTENCY_PENDING_SECONDS

MEETING_URL = "https://zoom.us/j/85012345678"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory):
    port = free_port()
    command = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.RedisError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield client
    process.kill()
    process.wait(timeout=10)


@pytest.fixture
def cust_7(connection):
    """The connection's user as the customer's backend knows them."""
    connection.user.external_user_id = "cust-7"
    connection.user.save(update_fields=["external_user_id"])
    return connection


@pytest.fixture
def cache_on_private_redis(private_redis):
    private_redis.flushdb()
    port = private_redis.connection_pool.connection_kwargs["port"]
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.3, "socket_timeout": 0.3},
        }
    }
    with override_settings(CACHES=caches):
        yield private_redis


def launch(api_client, backend, key: str):
    body = {"meeting_url": MEETING_URL, "external_user_id": "cust-7", "token_kinds": ["obf"]}
    return api_client.post("/api/bots/", body, format="json", HTTP_IDEMPOTENCY_KEY=key, **backend)


def bot_posts(fake_recall) -> int:
    return sum(1 for r in fake_recall.requests_log if r["method"] == "POST" and r["path"].endswith("/v1/bot/"))


def test_a_repeat_of_a_launch_whose_answer_was_not_stored_is_503_never_a_second_bot(
    api_client, backend, cust_7, fake_recall, cache_on_private_redis
):
    pause_ms = 2500
    fake_recall.configure(bot_create_answer_delay=1.0)

    def stop_writes_while_recall_creates():
        while bot_posts(fake_recall) == 0:
            time.sleep(0.02)
        cache_on_private_redis.execute_command("CLIENT", "PAUSE", pause_ms, "WRITE")

    paused = time.monotonic()
    pauser = threading.Thread(target=stop_writes_while_recall_creates)
    pauser.start()
    first = launch(api_client, backend, "order-1")
    pauser.join(timeout=10)
    assert first.status_code == 201, first.content  # launched; its answer could not be stored
    assert len(fake_recall.bots) == 1

    again = launch(api_client, backend, "order-1")  # Redis reads, takes no writes yet
    assert again.status_code == 503 and int(again["Retry-After"]) > 0, again.content
    assert "could not be stored" in again.json()["detail"] and "cache is away" not in again.json()["detail"]

    while time.monotonic() - paused < pause_ms / 1000 + 0.5:  # Redis takes writes again
        time.sleep(0.1)
    later = launch(api_client, backend, "order-1")
    assert later.status_code == 503 and later["Retry-After"]
    (marker,) = cache_on_private_redis.keys("*idempotency:bots:*")
    # Kept while a request may still run, not for a day: the database holds the key with the bot.
    assert 0 < cache_on_private_redis.ttl(marker) <= IDEMPOTENCY_PENDING_SECONDS
    assert Bot.objects.count() == 1 and len(fake_recall.bots) == 1 and bot_posts(fake_recall) == 1

    cache_on_private_redis.delete(marker)  # the marker's time is over
    replayed = launch(api_client, backend, "order-1")
    assert replayed.status_code == 201 and replayed["Idempotent-Replayed"] == "true", replayed.content
    assert replayed.json()["id"] == first.json()["id"] and replayed.json()["recall_id"] == first.json()["recall_id"]
    assert Bot.objects.count() == 1 and bot_posts(fake_recall) == 1

    other = launch(api_client, backend, "order-2")  # another key is another launch
    assert other.status_code == 201 and len(fake_recall.bots) == 2


def test_bad_input_with_a_key_leaves_the_key_usable(
    api_client, backend, connection, fake_recall, cache_on_private_redis
):
    bad = api_client.post("/api/bots/", {"meeting_url": "no"}, format="json", HTTP_IDEMPOTENCY_KEY="k", **backend)
    assert bad.status_code == 400 and "meeting_url" in bad.json()
    assert not cache_on_private_redis.keys("*idempotency:bots:*")


def test_a_repeat_after_redis_lost_the_answer_replays_the_bot_never_a_second(
    api_client, backend, cust_7, fake_recall, cache_on_private_redis
):
    """Redis is a cache (evicted, flushed, failed over): the key is kept with the bot too."""
    first = launch(api_client, backend, "order-9")
    assert first.status_code == 201, first.content
    cache_on_private_redis.flushdb()
    again = launch(api_client, backend, "order-9")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true", again.content
    assert again.json()["id"] == first.json()["id"]
    assert Bot.objects.count() == 1 and len(fake_recall.bots) == 1 and bot_posts(fake_recall) == 1
    assert launch(api_client, backend, "order-10").json()["id"] != first.json()["id"]


def test_a_repeat_of_a_refused_launch_whose_answer_was_lost_is_the_same_422(
    api_client, backend, cust_7, fake_recall, cache_on_private_redis
):
    fake_recall.configure(bot_create_fail_next=[400])
    first = launch(api_client, backend, "order-11")
    assert first.status_code == 422, first.content
    cache_on_private_redis.flushdb()
    again = launch(api_client, backend, "order-11")
    assert again.status_code == 422 and again["Idempotent-Replayed"] == "true", again.content
    assert again.json()["detail"] == first.json()["detail"]
    assert Bot.objects.count() == 1 and bot_posts(fake_recall) == 1


def test_after_24_hours_the_same_key_is_a_new_launch(api_client, backend, cust_7, fake_recall, cache_on_private_redis):
    """A key a backend reuses for a recurring meeting (the README's `meeting-…-user-42`) names one
    day's launch, not every launch after it."""
    from datetime import timedelta

    first = launch(api_client, backend, "meeting-85012345678-user-7")
    assert first.status_code == 201
    Bot.objects.update(created_at=Bot.objects.get().created_at - timedelta(hours=25))  # a day has passed
    cache_on_private_redis.flushdb()  # and the stored answer has expired
    tomorrow = launch(api_client, backend, "meeting-85012345678-user-7")
    assert tomorrow.status_code == 201 and "Idempotent-Replayed" not in tomorrow, tomorrow.content
    assert tomorrow.json()["id"] != first.json()["id"] and Bot.objects.count() == 2 and len(fake_recall.bots) == 2
    assert launch(api_client, backend, "meeting-85012345678-user-7").json()["id"] == tomorrow.json()["id"]
