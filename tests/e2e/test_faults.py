"""A slow Zoom, Recall or Redis never costs a user a grant, a bot, or the queue.

Real processes as in production (gunicorn, one Celery worker per queue, beat), PostgreSQL, the
fake Zoom and fake Recall, and a redis-server of this module's own so that it can be killed.
Each scenario drives the broker only over HTTP and reads what the fakes observed.
"""

import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from fakes.http import FakeServer, json_response
from recallbots.models import Bot, RecallOAuthApp
from tests.conftest import WEBHOOK_SECRET, WHSEC
from webhooks.models import EventDelivery, EventEndpoint
from zoomauth.models import ZoomConnection

from .conftest import World, private_broker_fixture, private_world, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

USERS = 40


fault_broker = private_broker_fixture(
    "faults",
    # The brownout: 300 s access tokens, refreshed well before they run out.
    extra_env={"ZOOM_REFRESH_WINDOW_SECONDS": "230"},
    # Callbacks wait up to 4 s on a slow Zoom: production's threads (docker/gunicorn.conf.py).
    threads=32,
)


@pytest.fixture
def world(fault_broker, e2e_fakes, settings, django_db_blocker):
    with private_world(fault_broker, e2e_fakes, settings, django_db_blocker) as world:
        yield world


def callback_url(connection: ZoomConnection, kind: str, index: int) -> str:
    extra = {"meeting_id": str(86000000000 + index)} if kind in ("obf", "join-token") else {}
    return connection.callback_url(kind, **extra)


@dataclass
class Answer:
    at: float
    kind: str
    status: int | None
    retry_after: str | None
    body: str
    connection: int
    meeting_id: str


def ask(url: str, kind: str, connection: ZoomConnection, index: int, started: float, headers=None) -> Answer:
    meeting_id = str(86000000000 + index)
    try:
        response = requests.get(url, timeout=5, headers=headers)  # Recall gives up after 5 s
        return Answer(
            time.monotonic() - started,
            kind,
            response.status_code,
            response.headers.get("Retry-After"),
            response.text,
            connection.pk,
            meeting_id,
        )
    except requests.RequestException:
        return Answer(time.monotonic() - started, kind, None, None, "", connection.pk, meeting_id)


def load(connections, *, seconds: float, per_second: float, started: float, kinds=None) -> list[Answer]:
    """~per_second callbacks a second over all four kinds and every connection, for `seconds`."""
    kinds = kinds or ("access-token", "zak", "obf", "join-token")
    answers: list[Answer] = []
    stop_at = time.monotonic() + seconds
    with ThreadPoolExecutor(max_workers=64) as pool:
        futures = []
        n = 0
        while time.monotonic() < stop_at:
            index = n % len(connections)
            kind = kinds[(n // len(connections) + n) % len(kinds)]
            connection = connections[index]
            futures.append(pool.submit(ask, callback_url(connection, kind, index), kind, connection, index, started))
            n += 1
            time.sleep(1 / per_second)
        answers = [future.result() for future in futures]
    return answers


INTROSPECT_KIND = {"access-token": "access_token", "zak": "zak", "obf": "obf", "join-token": "join_token"}


def valid(world: World, answer: Answer) -> bool:
    if answer.status != 200 or not answer.body:
        return False
    verdict = requests.post(
        world.zoom.base_url + "/_control/introspect",
        json={
            "kind": INTROSPECT_KIND[answer.kind],
            "token": answer.body,
            "meeting_id": answer.meeting_id,
            "consume": False,
        },
        timeout=5,
    ).json()
    return verdict["valid"] or verdict.get("reason") == "user_not_in_meeting"


def test_a_zoom_brownout_costs_no_user_their_grant(world):
    """Zoom does every refresh (the old refresh token dies at once) but answers 4 s late, then 9 s
    late; then mints answer 6 s late. Nobody reconnects, nobody gets a 410 or a 500."""
    world.zoom.configure(access_token_ttl=300)
    connections = world.users(USERS)
    # Stagger the stored expiries as a live deployment has them: due for refresh across the run.
    for i, connection in enumerate(connections):
        ZoomConnection.objects.filter(pk=connection.pk).update(
            access_token_expires_at=connection.access_token_expires_at - timedelta(seconds=60 + (i * 17) % 50)
        )
    started = time.monotonic()
    phases = [
        (8, {}),
        (15, {"refresh_answer_delay": 4.0}),
        (12, {"refresh_answer_delay": 9.0}),
        (10, {"refresh_answer_delay": 0.0, "mint_answer_delay": 6.0}),
        (20, {"mint_answer_delay": 0.0}),
    ]
    answers: list[Answer] = []
    recovered_at = 0.0
    for seconds, config in phases:
        world.zoom.configure(**config)
        if config == {"mint_answer_delay": 0.0}:
            recovered_at = time.monotonic() - started
        answers += load(connections, seconds=seconds, per_second=8, started=started)

    counters = world.zoom.counters
    statuses = {a.status for a in answers}
    assert counters["invalid_grant"] == 0, counters
    assert counters["refresh_success"] > USERS  # refreshes did happen, through the brownout
    stored = ZoomConnection.objects.filter(pk__in=[c.pk for c in connections])
    assert {c.status for c in stored} == {ZoomConnection.Status.ACTIVE}
    late = [(a.kind, round(a.at, 1)) for a in answers if a.status is None]
    assert not late, late  # every callback answered within Recall's 5 s
    assert statuses <= {200, 429, 502, 503}, statuses  # never 410, never 500
    assert all(a.retry_after for a in answers if a.status != 200)
    after = [a for a in answers if a.at >= recovered_at + 10]
    good = sum(valid(world, a) for a in after)
    print(
        f"brownout: {len(answers)} callbacks, {sum(a.status == 200 for a in answers)} × 200; "
        f"{good}/{len(after)} valid 200s from 10 s after recovery; Zoom counters {counters}"
    )
    assert after and good / len(after) >= 0.995


def test_recall_out_of_bots_holds_neither_the_events_nor_the_launches(world, settings):
    """Recall answers 507 (Retry-After 5 s) to every bot creation while 8 launches wait and 100
    Zoom events arrive: the events reach Recall while the launches still wait; afterwards each
    launch is created exactly once."""
    recall_app_id = _register_app(world)
    world.users(2)
    world.recall.configure(bot_create_fail_next=[507] * 10_000, retry_after="5")
    launches = []
    for n in range(8):
        response = requests.post(
            world.broker.url + "/api/bots/",
            json={
                "meeting_url": f"https://zoom.us/j/{86000000000 + n % 2}",
                "external_user_id": f"cust-u{n % 2}",
                "token_kinds": ["obf"],
            },
            headers=world.api,
            timeout=10,
        )
        assert response.status_code == 202, response.text
        launches.append(response.json()["id"])
    acked = {}
    for n in range(100):
        body = json.dumps({"event": "meeting.started", "event_ts": n, "payload": {"object": {"id": n}}})
        sent_at = time.time()  # the ack comes after this: lags below are upper bounds
        result = requests.post(
            world.zoom.base_url + "/_control/send-webhook",
            json={"url": world.app.webhook_url, "secret": WEBHOOK_SECRET, "raw": body},
            timeout=10,
        ).json()
        assert result["status"] == 200
        acked[hashlib.sha256(body.encode()).hexdigest()] = sent_at
        time.sleep(0.1)

    def forwarded():
        receipts = [r for r in world.recall.webhook_receipts if r["app"] == recall_app_id]
        return receipts if {r["sha256"] for r in receipts} >= set(acked) else None

    receipts = wait_for(forwarded, timeout=30)
    lag = max(r["received_at"] - acked[r["sha256"]] for r in receipts if r["sha256"] in acked)
    print(f"Recall 507 for every launch: 100 Zoom events forwarded, slowest at most {lag:.2f} s after its ack")
    # The events did not wait behind the launches: those are all still waiting for Recall.
    assert set(Bot.objects.filter(public_id__in=launches).values_list("status", flat=True)) == {Bot.Status.QUEUED}
    assert len({r["sha256"] for r in receipts}) == len(receipts)  # each event once

    world.recall.configure(bot_create_fail_next=[])
    wait_for(lambda: not Bot.objects.filter(status=Bot.Status.QUEUED).exists(), timeout=60)
    at_recall = world.recall.bots
    assert len(at_recall) == 8  # exactly once each
    metadata_ids = sorted(bot["metadata"]["broker_bot_id"] for bot in at_recall.values())
    assert metadata_ids == sorted(launches)


def _register_app(world: World) -> str:
    from recallbots.services import recall_app_register

    recall_app = recall_app_register(zoom_app=world.app)
    assert RecallOAuthApp.objects.filter(pk=recall_app.pk).exists()
    return recall_app.recall_id


class Receiver(FakeServer):
    """The customer's backend: down (503) until told otherwise."""

    name = "customer-backend"

    def __init__(self):
        super().__init__()
        self.received: list[dict] = []
        self.status = 503
        self.route("POST", "/hooks", self.hook)

    def hook(self, req):
        with self.lock:
            self.received.append({"body": req.body, "headers": req.headers, "answered": self.status})
        return json_response(self.status, {})


def test_events_wait_out_a_dead_endpoint_and_a_killed_worker_in_order_exactly_once(world):
    receiver = Receiver().start()
    try:
        endpoint = EventEndpoint.objects.create(url=receiver.base_url + "/hooks", secret=EventEndpoint.new_secret())
        world.zoom.add_user(id="zu_w0", email="w0@zoom.example")
        world.zoom.add_user(id="zu_w1", email="w1@zoom.example")
        # Four events per connection while the endpoint is down: connected, revoked, connected, revoked.
        for _ in range(2):
            for i in range(2):
                connection = world.connect(f"cust-w{i}", f"zu_w{i}")
                deleted = requests.delete(
                    f"{world.broker.url}/api/connections/{connection.public_id}/", headers=world.api, timeout=5
                )
                assert deleted.status_code == 204
        # kill -9 of the customer-events worker, then a state change: its event is in the outbox.
        world.broker.kill("worker-customer-events")
        last = world.connect("cust-w0", "zu_w0")
        assert EventDelivery.objects.filter(event__connection=last).count() == 5
        receiver.status = 200
        world.broker.launch("worker-customer-events")
        wait_for(lambda: not EventDelivery.objects.exclude(status="delivered").exists(), timeout=120, interval=0.5)
    finally:
        receiver.stop()
    delivered = [m for m in receiver.received if m["answered"] == 200]
    ids = [m["headers"]["webhook-id"] for m in delivered]
    assert len(ids) == len(set(ids)) == 9  # each event delivered exactly once
    for i in range(2):
        line = [
            Webhook(endpoint.secret).verify(m["body"], m["headers"])["type"]
            for m in delivered
            if f"cust-w{i}" in m["body"].decode()
        ]
        expected = ["connection.connected", "connection.revoked"] * 2 + (["connection.connected"] if i == 0 else [])
        assert line == expected  # in order per connection


def test_a_thousand_verified_callbacks_from_one_address_are_never_throttled(world):
    connections = world.users(4, prefix="t")
    urls = [c.access_token_callback_url for c in connections]

    def signed(n: int) -> int:
        msg_id = f"msg_{n}"
        now = datetime.now(UTC)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(WHSEC).sign(msg_id, now, ""),
        }
        return requests.get(urls[n % len(urls)], headers=headers, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(signed, range(1000)))
    assert statuses.count(429) == 0
    assert statuses == [200] * 1000


def test_redis_killed_for_thirty_seconds(world):
    """Under 10 callbacks a second and one Zoom event a second, redis-server dies for 30 s: the
    access token keeps coming from the database, the rest answer 200 or 503 + Retry-After, no
    500, and every Zoom event taken in meanwhile reaches Recall afterwards."""
    recall_app_id = _register_app(world)
    connections = world.users(5, prefix="r")
    started = time.monotonic()
    stop = threading.Event()
    sent: list[str] = []

    def events():
        n = 0
        while not stop.is_set():
            body = json.dumps({"event": "meeting.started", "event_ts": n, "payload": {"object": {"id": n}}})
            result = requests.post(
                world.zoom.base_url + "/_control/send-webhook",
                json={"url": world.app.webhook_url, "secret": WEBHOOK_SECRET, "raw": body},
                timeout=10,
            ).json()
            if result["status"] == 200:
                sent.append(hashlib.sha256(body.encode()).hexdigest())
            n += 1
            time.sleep(1)

    sender = threading.Thread(target=events)
    world.broker.redis.kill()
    sender.start()
    try:
        answers = load(connections, seconds=30, per_second=10, started=started)
    finally:
        stop.set()
        sender.join()
        world.broker.redis.start()
    assert sent, "no Zoom event was acknowledged during the outage"
    access = [a for a in answers if a.kind == "access-token"]
    others = [a for a in answers if a.kind != "access-token"]
    ok = sum(a.status == 200 and valid(world, a) for a in access)
    print(
        f"redis away 30 s: access-token {ok}/{len(access)} valid 200s; "
        f"others {sorted({a.status for a in others})}; {len(sent)} Zoom events acked"
    )
    assert ok / len(access) >= 0.99
    assert {a.status for a in others} <= {200, 503}
    assert all(a.retry_after for a in others if a.status == 503)
    assert 500 not in {a.status for a in answers}

    revived = []

    def forwarded():
        # docker compose restarts a process that exits (restart: unless-stopped); so does this.
        # A Celery worker can exit on a lost Redis connection (kombu: "Unrecoverable error:
        # AttributeError ... 'hostname'" while restoring unacknowledged messages).
        revived.extend(world.broker.revive())
        receipts = {r["sha256"] for r in world.recall.webhook_receipts if r["app"] == recall_app_id}
        return receipts >= set(sent)

    wait_for(forwarded, timeout=120, interval=1)
    print(f"restarted after the outage, as compose would: {revived or 'none'}")
