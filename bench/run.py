"""Benchmarks for the broker's speed and memory targets. Run with `make bench`.

Uses its own PostgreSQL database (broker_bench_inprocess, made anew by main()) and Redis database 8, with the
fake Zoom answering over real HTTP after a configurable delay (a Zoom round trip). Prints figures;
asserts nothing about timing (the tests do not time anything either).

- token callbacks: latency of the access-token callback (stored token) and of minting callbacks,
  against Recall's 5 s limit;
- ZAK single-flight: N concurrent ZAK callbacks for one connection, and how many Zoom calls they
  cost;
- beat tick: time of the "who is due" query as the table grows, with a fixed number due;
- memory: peak RSS of this process.
"""

import os
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import fresh  # noqa: E402

os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "brokerproject.settings",
        "DEBUG": "true",
        "FIELD_ENCRYPTION_KEY": fresh.encryption_key(),
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/broker_bench_inprocess",
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"),
        "PUBLIC_BASE_URL": "https://broker.bench.test",
        "LOG_LEVEL": "WARNING",
        "ALLOWED_HOSTS": "testserver",
        "CONN_MAX_AGE": "60",
        "CALLBACK_RATE_PER_ADDRESS": "1000000/min",
        "CALLBACK_RATE_PER_CONNECTION": "1000000/min",
    }
)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import User  # noqa: E402
from fakes.zoom import FakeZoom  # noqa: E402
from tests.rows import healthy_connections  # noqa: E402
from zoomauth.models import CallbackLog, ZoomApp, ZoomConnection  # noqa: E402
from zoomauth.services import connection_save_grant  # noqa: E402
from zoomauth.zoom import TokenSet, ZoomUser, exchange_code  # noqa: E402

ZOOM_DELAY = float(os.environ.get("BENCH_ZOOM_DELAY", "0.08"))


def path_of(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.path}?{parsed.query}"


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return f"p50 {p(0.50):.1f} ms  p95 {p(0.95):.1f} ms  p99 {p(0.99):.1f} ms  max {ordered[-1] * 1000:.1f} ms"


def setup_world(fake: FakeZoom) -> ZoomConnection:
    call_command("migrate", verbosity=0)
    cache.clear()
    ZoomConnection.objects.all().delete()
    CallbackLog.objects.all().delete()
    ZoomApp.objects.all().delete()
    app = ZoomApp.objects.create(name="bench", client_id="bench-client", client_secret="bench-secret")
    fake.add_app(client_id=app.client_id, client_secret=app.client_secret, redirect_uris=[app.redirect_uri])
    fake.add_user(id="zu_bench", email="bench@zoom.example")
    fake.add_meeting(id="85000000000", host_id="zu_bench")
    user, _ = User.objects.get_or_create(username="bench")
    location = fake.consent(
        client_id=app.client_id, user_id="zu_bench", redirect_uri=app.redirect_uri, state="s", code_challenge=""
    )
    code = location.split("code=")[1].split("&")[0]
    tokens: TokenSet = exchange_code(
        client_id=app.client_id,
        client_secret=app.client_secret,
        code=code,
        redirect_uri=app.redirect_uri,
        code_verifier="",
    )
    me = ZoomUser(id="zu_bench", account_id="acct_bench", email="bench@zoom.example", pmi="")
    return connection_save_grant(user=user, app=app, me=me, tokens=tokens)


def bench_callbacks(conn: ZoomConnection) -> None:
    client = Client()
    for kind, url, count in (
        ("access-token (stored token)", path_of(conn.access_token_callback_url), 300),
        ("OBF (one Zoom call each)", path_of(conn.callback_url("obf", meeting_id="85000000000")), 100),
        ("join token (one Zoom call each)", path_of(conn.callback_url("join-token", meeting_id="85000000000")), 100),
    ):
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(url)
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content
        print(f"  {kind:34} n={count:4}  {percentiles(samples)}")


def bench_access_token_refresh(conn: ZoomConnection) -> None:
    client = Client()
    samples = []
    for _ in range(30):
        ZoomConnection.objects.filter(pk=conn.pk).update(access_token_expires_at=timezone.now() + timedelta(seconds=60))
        started = time.perf_counter()
        assert client.get(path_of(conn.access_token_callback_url)).status_code == 200
        samples.append(time.perf_counter() - started)
    print(f"  {'access-token (60 s left: refresh)':34} n={30:4}  {percentiles(samples)}")


def bench_zak_single_flight(conn: ZoomConnection, fake: FakeZoom, total: int = 200, workers: int = 50) -> None:
    cache.clear()
    before = fake.counters["zak"]
    url = path_of(conn.zak_url)

    def one(_):
        client = Client()
        started = time.perf_counter()
        response = client.get(url)
        connections.close_all()
        return response.status_code, time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, range(total)))
    wall = time.perf_counter() - started
    ok = sum(1 for status, _ in results if status == 200)
    print(
        f"  {total} ZAK callbacks, {workers} at a time: {ok} answered 200 in {wall:.2f} s; "
        f"Zoom ZAK calls: {fake.counters['zak'] - before}"
    )
    print(f"  per-callback latency: {percentiles([t for _, t in results])}")


def bench_beat_tick() -> None:
    app = ZoomApp.objects.get()
    user = User.objects.get(username="bench")
    now = timezone.now()
    print("  rows in table   due   'who is due' query (median of 20)")
    existing = ZoomConnection.objects.count()
    for target in (1_000, 10_000, 100_000):
        missing = target - existing
        healthy_connections(user, app, missing, first=existing, refreshed_ago=timedelta(minutes=5), now=now)
        existing = target
        due_ids = list(ZoomConnection.objects.order_by("pk").values_list("pk", flat=True)[:50])
        ZoomConnection.objects.filter(pk__in=due_ids).update(access_token_expires_at=now + timedelta(minutes=2))
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE zoomauth_zoomconnection")
        samples = []
        for _ in range(20):
            started = time.perf_counter()
            count = len(list(ZoomConnection.objects.due_for_refresh().values_list("pk", flat=True)))
            samples.append(time.perf_counter() - started)
        print(f"  {target:>14,}   {count:>3}   {statistics.median(samples) * 1000:.2f} ms")
        ZoomConnection.objects.filter(pk__in=due_ids).update(access_token_expires_at=now + timedelta(minutes=50))


def bench_beat_fan_out() -> None:
    """Everything due: the tick's cost (claims and one message per chunk of CHUNK_SIZE), then a
    worker's cost to fan the chunks out into one refresh task per connection.
    Floor: one Redis PING round trip, measured in the same run."""
    from brokerproject.redis_client import shared_redis
    from zoomauth.tasks import CHUNK_SIZE, connections_refresh_due, connections_refresh_fan_out

    client = shared_redis()
    pings = []
    for _ in range(200):
        started = time.perf_counter()
        client.ping()
        pings.append(time.perf_counter() - started)
    ping_ms = statistics.median(pings) * 1000
    print(f"  Redis round trip (floor): {ping_ms:.3f} ms; chunk size {CHUNK_SIZE}")
    now = timezone.now()
    all_ids = list(ZoomConnection.objects.order_by("pk").values_list("pk", flat=True))
    ZoomConnection.objects.update(access_token_expires_at=now + timedelta(minutes=50))
    connections_refresh_due.run()  # warm up: the broker connection is opened on the first publish
    for due in (1_000, 100_000):
        cache.clear()  # the broker's queues and the claims live in this Redis database
        ids = all_ids[:due]
        ZoomConnection.objects.update(access_token_expires_at=now + timedelta(minutes=50))
        ZoomConnection.objects.filter(pk__in=ids).update(access_token_expires_at=now + timedelta(minutes=2))
        started = time.perf_counter()
        enqueued = connections_refresh_due.run()
        wall = time.perf_counter() - started
        messages = client.llen("celery")
        again = connections_refresh_due.run()
        print(
            f"  {due:>7,} due: tick enqueued {enqueued:,} in {wall * 1000:.0f} ms as {messages} messages "
            f"({wall * 1000 / max(1, messages):.2f} ms a message, {wall * 1000 / ping_ms / max(1, messages):.0f}× a "
            f"round trip); the next tick enqueued {again}"
        )
        chunk = ids[:CHUNK_SIZE]
        started = time.perf_counter()
        connections_refresh_fan_out.run(chunk)
        fan_out = time.perf_counter() - started
        print(
            f"           a worker fans a chunk of {len(chunk)} out in {fan_out * 1000:.0f} ms "
            f"({fan_out * 1000 / len(chunk):.2f} ms a refresh task, "
            f"{fan_out * 1000 / ping_ms / len(chunk):.0f}× a round trip)"
        )
    cache.clear()
    ZoomConnection.objects.update(access_token_expires_at=now + timedelta(minutes=50))


def main() -> None:
    fresh.database("broker_bench_inprocess")
    fake = FakeZoom().start()
    fake.latency = ZOOM_DELAY
    settings.ZOOM_OAUTH_BASE_URL = fake.base_url
    settings.ZOOM_API_BASE_URL = fake.base_url + "/v2"
    conn = setup_world(fake)
    print(f"Fake Zoom answers after {ZOOM_DELAY * 1000:.0f} ms. PostgreSQL and Redis on 127.0.0.1.\n")
    print("Token callbacks (in-process WSGI client, sequential):")
    bench_callbacks(conn)
    bench_access_token_refresh(conn)
    print("\nZAK single-flight (threads, shared Redis lock and cache):")
    bench_zak_single_flight(conn, fake)
    print("\nBeat tick cost:")
    bench_beat_tick()
    print("\nBeat fan-out (enqueue everything due):")
    bench_beat_fan_out()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nPeak RSS of the benchmark process: {peak:.0f} MiB")
    fake.stop()


if __name__ == "__main__":
    main()
