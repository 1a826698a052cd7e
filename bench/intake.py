"""Zoom webhook intake at burst rate, over HTTP against the production server stack.

gunicorn with docker/gunicorn.conf.py, PostgreSQL and Redis (the Celery broker: sends are
enqueued, no worker runs, so only the intake is measured). wrk replays distinct, correctly signed
meeting.created events (distinct bodies: Zoom's retries of one body are deduplicated). Floor: the
same stack serving /bench/floor in the same run. Then the database is asked how many events were
stored: every 200 must be a stored row, none twice.
"""

import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench.callbacks as stack  # noqa: E402 - the same environment, ports and helpers
from bench import fresh  # noqa: E402

SECRET = "bench-webhook-secret"
EVENTS = int(os.environ.get("BENCH_INTAKE_EVENTS", "20000"))
CONNECTIONS = int(os.environ.get("BENCH_INTAKE_CONCURRENCY", "20"))

LUA = """
-- Each of wrk's threads sends every other event, so no body is sent twice. bench/presence.py
-- paces its senders with INTAKE_DELAY_MS and starts them at INTAKE_OFFSET; here both are 0.
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local lines = {}
for line in io.lines(os.getenv("INTAKE_FILE")) do lines[#lines + 1] = line end
local i = nil
local path = os.getenv("INTAKE_PATH")
local pause = tonumber(os.getenv("INTAKE_DELAY_MS") or "0")
local offset = tonumber(os.getenv("INTAKE_OFFSET") or "0")
request = function()
  i = (i or (offset + id)) + 2
  local line = lines[((i - 2) % #lines) + 1]
  local ts, sig, body = line:match("^(%d+)\\t(%S+)\\t(.*)$")
  return wrk.format("POST", path, {["Content-Type"] = "application/json; charset=utf-8",
    ["x-zm-request-timestamp"] = ts, ["x-zm-signature"] = sig}, body)
end
if pause > 0 then
  delay = function() return pause end
end
"""


def seed():
    fresh.database(stack.DATABASE)  # its own run: a new key (bench.callbacks made one at import)
    import django

    django.setup()
    from django.core.management import call_command

    from recallbots.models import RecallOAuthApp
    from webhooks.models import ZoomWebhookDelivery
    from zoomauth.models import ZoomApp

    call_command("migrate", verbosity=0)
    ZoomWebhookDelivery.objects.all().delete()
    RecallOAuthApp.objects.filter(zoom_app__client_id="bench-intake").delete()
    ZoomApp.objects.filter(client_id="bench-intake").delete()
    app = ZoomApp.objects.create(name="intake", client_id="bench-intake", client_secret="x", webhook_secret=SECRET)
    RecallOAuthApp.objects.create(zoom_app=app, recall_id="bench-intake", base_url="http://127.0.0.1:9/us-east-1")
    return app


def signed_events(path: Path) -> None:
    ts = str(int(time.time() * 1000))
    with path.open("w") as out:
        for n in range(EVENTS):
            body = json.dumps(
                {
                    "event": "meeting.created",
                    "event_ts": int(ts) + n,
                    "payload": {"account_id": "acct", "object": {"id": 85000000000 + n, "host_id": "zu_x"}},
                },
                separators=(",", ":"),
            )
            digest = hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
            out.write(f"{ts}\tv0={digest}\t{body}\n")


def main() -> None:
    app = seed()
    from webhooks.models import ZoomWebhookDelivery

    events = Path(tempfile.mkdtemp()) / "events.tsv"
    signed_events(events)
    script = events.with_suffix(".lua")
    script.write_text(LUA)
    web = subprocess.Popen(
        [stack.PY, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", "brokerproject.wsgi:application"],
        env=stack.ENV,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        stack.wait_for(stack.BROKER_URL + "/healthz")
        stack.wrk("/bench/floor", connections=CONNECTIONS, duration="3s")
        floor = stack.wrk("/bench/floor", connections=CONNECTIONS, duration="8s")
        env = {**os.environ, "INTAKE_FILE": str(events), "INTAKE_PATH": f"/webhooks/zoom/{app.public_id}/"}
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{CONNECTIONS}",
                "-d10s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                str(script),
                stack.BROKER_URL,
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
        result = stack.parse_wrk(out)
        time.sleep(1)  # the answers in flight when wrk stopped
        from django.db.models import Count

        counts = ZoomWebhookDelivery.objects.filter(app=app).aggregate(
            rows=Count("pk"), bodies=Count("body_sha256", distinct=True)
        )
        stored, distinct = counts["rows"], counts["bodies"]
        print(f"gunicorn (docker/gunicorn.conf.py), {CONNECTIONS} concurrent senders, 10 s of signed events\n")
        stack.line("floor (DRF view, one cache read)", floor)
        stack.line("Zoom event intake", result, floor)
        print(
            f"  answered {result['total']} (non-2xx {result['non2xx']}); rows stored {stored}, "
            f"distinct bodies {distinct} (every 200 stored: {stored >= result['total'] - result['non2xx']}, "
            f"none twice: {stored == distinct})"
        )
    finally:
        web.terminate()
        web.wait(timeout=20)
        from django.core.cache import cache

        cache.clear()  # the enqueued sends: no worker ran to take them


if __name__ == "__main__":
    main()
