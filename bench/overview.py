"""The admin overview at 100 000 connections and 1 000 000 token-callback rows, over HTTP.

What runs: gunicorn with docker/gunicorn.conf.py on its own PostgreSQL database
(broker_bench_overview, made anew) and Redis database 8. A staff session GETs /admin/ (the
overview) 30 times, alternating with /admin/password_change/ (a page of the same stack: session,
admin, template, no figures) as the floor. Prints p50/p95 of each, their ratio, and the target
(p95 ≤ 300 ms). Asserts nothing.
"""

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench.callbacks as stack  # noqa: E402 - the same environment, ports and helpers
from bench import fresh  # noqa: E402

CONNECTIONS = int(os.environ.get("BENCH_OVERVIEW_CONNECTIONS", "100000"))
CALLBACKS = int(os.environ.get("BENCH_OVERVIEW_CALLBACKS", "1000000"))
ROUNDS = 30
PASSWORD = "bench-overview-password-123"


def seed() -> None:
    os.environ["DATABASE_URL"] = fresh.database("broker_bench_overview")
    stack.ENV["DATABASE_URL"] = os.environ["DATABASE_URL"]
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import User
    from zoomauth.models import CallbackHourStat, ZoomApp

    call_command("migrate", verbosity=0)
    call_command("check_encryption", verbosity=0)
    User.objects.create_superuser(username="bench", email="bench@example.com", password=PASSWORD)
    owner = User.objects.create_user(username="owner", password=PASSWORD)
    app = ZoomApp.objects.create(name="bench", client_id="bench-overview", client_secret="x", webhook_secret="y")
    started = time.monotonic()
    with connection.cursor() as cursor:
        # Every 50th needs reconnect, every 20th is revoked, every 97th's refresh is failing.
        cursor.execute(
            """
            INSERT INTO zoomauth_zoomconnection (
                public_id, user_id, app_id, zoom_user_id, zoom_account_id, email, pmi, scopes, token_source,
                access_token, refresh_token, access_token_expires_at, token_generation, status,
                is_service_account, allow_join_tokens_for_others, consecutive_failures, last_error,
                callback_secret_hash, callback_secret, created_at, updated_at, last_refreshed_at,
                needs_reconnect_since
            )
            SELECT gen_random_uuid(), %s, %s, 'zu_' || g, '', '', '', '', 'local', '', '',
                   now() + (g %% 3600) * interval '1 second', 1,
                   CASE WHEN g %% 50 = 0 THEN 'needs_reconnect' WHEN g %% 20 = 0 THEN 'revoked' ELSE 'active' END,
                   false, false, CASE WHEN g %% 97 = 0 THEN 2 ELSE 0 END,
                   CASE WHEN g %% 50 = 0 THEN 'Zoom refused the refresh token (invalid_grant).' ELSE '' END,
                   '', '', now(), now(), now() - (g %% 86400) * interval '1 second',
                   CASE WHEN g %% 50 = 0 THEN now() - (g %% 7200) * interval '1 second' END
            FROM generate_series(1, %s) AS g
            """,
            [owner.pk, app.pk, CONNECTIONS],
        )
        cursor.execute("SELECT min(id), max(id) FROM zoomauth_zoomconnection")
        low, high = cursor.fetchone()
        cursor.execute(
            """
            INSERT INTO zoomauth_callbacklog (
                connection_id, kind, meeting_id, status_code, outcome, latency_ms, zoom_calls,
                signature_checked, created_at
            )
            SELECT %s + (g::bigint * 7919) %% (%s - %s + 1),
                   (ARRAY['access-token', 'zak', 'obf', 'join-token'])[1 + g %% 4],
                   '', CASE WHEN g %% 25 = 0 THEN 503 ELSE 200 END, 'bench', (g * 37) %% 900, g %% 2, true,
                   now() - (g %% 86400) * interval '1 second'
            FROM generate_series(1, %s) AS g
            """,
            [low, high, low, CALLBACKS],
        )
        # What the audit writer keeps beside the rows as it writes them: counts per hour, kind and
        # latency bucket (zoomauth.audit.audit_write), here made from the seeded rows at once.
        cursor.execute(
            """
            INSERT INTO zoomauth_callbackhourstat (hour, kind, latency_bucket, answered, answered_200)
            SELECT date_trunc('hour', created_at), kind, least(latency_ms / %s, %s), count(*),
                   count(*) FILTER (WHERE status_code = 200)
            FROM zoomauth_callbacklog GROUP BY 1, 2, 3
            """,
            [CallbackHourStat.BUCKET_MS, CallbackHourStat.LAST_BUCKET],
        )
        cursor.execute("ANALYZE")
    print(
        f"seeded {CONNECTIONS:,} connections and {CALLBACKS:,} callback rows (the last 24 h) "
        f"in {time.monotonic() - started:.1f} s",
        flush=True,
    )


def signed_in() -> requests.Session:
    browser = requests.Session()
    page = browser.get(stack.BROKER_URL + "/admin/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    browser.post(
        stack.BROKER_URL + "/admin/login/?next=/admin/",
        data={"username": "bench", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": stack.BROKER_URL + "/admin/login/"},
        timeout=30,
    )
    return browser


def timed(browser: requests.Session, path: str) -> float:
    started = time.perf_counter()
    response = browser.get(stack.BROKER_URL + path, timeout=60)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{path} answered {response.status_code}")
    return elapsed


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def main() -> None:
    seed()
    env = {
        **stack.ENV,
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "WEB_CONCURRENCY": "2",
        # Plain HTTP on loopback: the session and CSRF cookies must travel without TLS here.
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "CSRF_TRUSTED_ORIGINS": stack.BROKER_URL,
    }
    web = subprocess.Popen(
        [stack.PY, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", "brokerproject.wsgi:application"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        stack.wait_for(stack.BROKER_URL + "/healthz")
        browser = signed_in()
        page = browser.get(stack.BROKER_URL + "/admin/", timeout=60).text
        assert "Token callbacks, last 24 hours" in page, page[:500]
        overview, floor = [], []
        for _ in range(3):  # warm both workers
            timed(browser, "/admin/")
            timed(browser, "/admin/password_change/")
        for _ in range(ROUNDS):
            overview.append(timed(browser, "/admin/"))
            floor.append(timed(browser, "/admin/password_change/"))
        print(
            f"overview /admin/        p50 {statistics.median(overview):6.1f} ms  p95 {p95(overview):6.1f} ms "
            f"(target p95 ≤ 300 ms)\n"
            f"floor (admin page)      p50 {statistics.median(floor):6.1f} ms  p95 {p95(floor):6.1f} ms\n"
            f"ratio overview / floor  p50 {statistics.median(overview) / statistics.median(floor):.1f}×  "
            f"p95 {p95(overview) / p95(floor):.1f}×   ({ROUNDS} alternating requests each)",
            flush=True,
        )
    finally:
        web.terminate()
        web.wait(timeout=20)


if __name__ == "__main__":
    main()
