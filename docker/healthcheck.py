"""The containers' health checks (docker-compose.yml), one per kind of process:

- `healthcheck.py` (web): GET /healthz on the local port with a Host header Django accepts (the
  first ALLOWED_HOSTS name; a leading dot or '*' becomes a plain name).
- `healthcheck.py worker`: a Celery worker of this container (its node name ends in @<hostname>)
  answers a ping through the broker. A worker that cannot reach the broker, or crashed, does not.
- `healthcheck.py beat`: the beat heartbeat (a task beat sends, a worker records) is young and was
  recorded after this container's process started: this beat sends, not the one before a restart.
"""

import os
import socket
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

APP = Path(__file__).resolve().parent.parent  # /app: worker and beat checks load its settings


def web() -> int:
    first = os.environ.get("ALLOWED_HOSTS", "localhost").split(",")[0].strip()
    host = first.lstrip(".") if first not in ("", "*") else "localhost"
    url = os.environ.get("HEALTHCHECK_URL", f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz")
    request = urllib.request.Request(url, headers={"Host": host, "X-Forwarded-Proto": "https"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=3) as response:  # noqa: S310 - a fixed local URL
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck failed: {exc}", file=sys.stderr)
        return 1


def worker() -> int:
    sys.path.insert(0, str(APP))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerproject.settings")
    from brokerproject.celery import app

    here = socket.gethostname()
    replies = app.control.ping(timeout=float(os.environ.get("HEALTHCHECK_PING_TIMEOUT", "3")))
    nodes = [name for reply in replies for name in reply]
    if any(name.rpartition("@")[2] == here for name in nodes):
        return 0
    print(f"healthcheck failed: no worker on {here} answered a ping (answered: {nodes})", file=sys.stderr)
    return 1


def process_started_at(pid: str) -> datetime:
    """When process `pid` started: its start in clock ticks since boot (/proc/<pid>/stat), plus boot."""
    with open(f"/proc/{pid}/stat") as stat:
        ticks = int(stat.read().rpartition(")")[2].split()[19])
    with open("/proc/stat") as stat:
        boot = next(int(line.split()[1]) for line in stat if line.startswith("btime "))
    return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), tz=UTC)


def beat() -> int:
    sys.path.insert(0, str(APP))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerproject.settings")
    os.environ["DB_POOL_MAX_SIZE"] = "0"  # one connection, closed below: no pool for two queries
    import django

    django.setup()
    from django.db import connection

    from accounts.models import Heartbeat, beat_heartbeat_check

    young, detail = beat_heartbeat_check()
    heartbeat = Heartbeat.objects.filter(name="beat").first()
    connection.close()
    started = process_started_at(os.environ.get("HEALTHCHECK_PID", "1"))
    if young and heartbeat.beat_at >= started:
        return 0
    if young:
        detail += f", before this beat started ({started:%H:%M:%S})"
    print(f"healthcheck failed: {detail}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "web"
    sys.exit({"web": web, "worker": worker, "beat": beat}[kind]())
