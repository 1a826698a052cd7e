"""Token callbacks over HTTP against the production server stack. Run with `make bench`.

What runs: gunicorn with docker/gunicorn.conf.py (the production config), PostgreSQL and Redis on
127.0.0.1, the fake Zoom as its own process answering every call after BENCH_ZOOM_DELAY (100 ms),
and wrk as the load generator (100 concurrent connections). Encryption, the audit and the
throttles are on; the throttle rates are raised so that one load generator is not throttled.

Every figure is printed beside two baselines measured in the same run: a bare WSGI callable under
the same gunicorn config (bench/bare.py: what the server itself costs) and the floor, the broker's
stack serving /bench/floor, a DRF view that reads one cached value (bench/urls.py). Each is
measured over fresh connections (a new TCP connection per request, as Recall's bots fetch a token
URL: what production looks like) and over kept-alive ones. This machine is shared and noisy, so
the ratios are what to compare between runs, not the milliseconds.
"""

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import fresh  # noqa: E402

PY = sys.executable
ZOOM_DELAY = float(os.environ.get("BENCH_ZOOM_DELAY", "0.1"))
DURATION = os.environ.get("BENCH_DURATION", "5s")
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "100"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MEETING = "85000000000"
# Its own database by default; BENCH_DATABASE gives another (two benchmarks at once on one machine).
DATABASE = os.environ.get("BENCH_DATABASE", "broker_bench")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BROKER_PORT = free_port()
ZOOM_PORT = free_port()
ZOOM_URL = f"http://127.0.0.1:{ZOOM_PORT}"
BROKER_URL = f"http://127.0.0.1:{BROKER_PORT}"

ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "bench.settings",
    "DEBUG": "false",
    "SECRET_KEY": "bench-" + "k" * 60,
    "FIELD_ENCRYPTION_KEY": fresh.encryption_key(),
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "PUBLIC_BASE_URL": BROKER_URL,
    "SECURE_SSL_REDIRECT": "false",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"),
    "ZOOM_OAUTH_BASE_URL": ZOOM_URL,
    "ZOOM_API_BASE_URL": ZOOM_URL + "/v2",
    "LOG_LEVEL": "WARNING",
    "CALLBACK_RATE_PER_ADDRESS": "100000000/min",
    "CALLBACK_RATE_PER_CONNECTION": "100000000/min",
    "PORT": str(BROKER_PORT),
    "PYTHONPATH": str(ROOT),
}
os.environ.update(ENV)


def wait_for(url: str, seconds: float = 30) -> None:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def seed():
    fresh.database(DATABASE)
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command

    from accounts.models import User
    from fakes.control import FakeZoomControl
    from recallbots.models import RecallOAuthApp
    from zoomauth.models import CallbackLog, ZoomApp, ZoomConnection
    from zoomauth.services import connection_save_grant
    from zoomauth.zoom import ZoomUser, exchange_code

    call_command("migrate", verbosity=0)
    call_command("check_encryption", verbosity=0)
    cache.clear()
    CallbackLog.objects.all().delete()
    ZoomConnection.objects.all().delete()
    RecallOAuthApp.objects.all().delete()  # left by bench/intake.py; it protects its Zoom app
    ZoomApp.objects.all().delete()
    control = FakeZoomControl(ZOOM_URL)
    app = ZoomApp.objects.create(name="bench", client_id="bench-client", client_secret="bench-secret")
    control.add_app(client_id=app.client_id, client_secret=app.client_secret, redirect_uris=[app.redirect_uri])
    control.add_user(id="zu_bench", email="bench@zoom.example")
    control.add_meeting(id=MEETING, host_id="zu_bench")
    location = control._post(
        "/_control/consent",
        {"client_id": app.client_id, "user_id": "zu_bench", "redirect_uri": app.redirect_uri, "state": "s"},
    )["location"]
    code = location.split("code=")[1].split("&")[0]
    tokens = exchange_code(
        client_id=app.client_id,
        client_secret=app.client_secret,
        code=code,
        redirect_uri=app.redirect_uri,
        code_verifier="",
    )
    user, _ = User.objects.get_or_create(username="bench")
    me = ZoomUser(id="zu_bench", account_id="acct_bench", email="bench@zoom.example", pmi="")
    conn = connection_save_grant(user=user, app=app, me=me, tokens=tokens)
    control.configure(latency=ZOOM_DELAY)
    return conn, control


def path_of(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.path}?{parsed.query}"


def wrk(
    path: str, *, connections: int = CONCURRENCY, duration: str = DURATION, base: str = "", fresh: bool = False
) -> dict:
    """One wrk run. `fresh`: a new TCP connection per request (wrk reconnects after every answer to
    `Connection: close`), as Recall's bots fetch a token URL; otherwise kept-alive connections."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}",
            "--timeout",
            "10s",
            "--latency",
            *(["-H", "Connection: close"] if fresh else []),
            (base or BROKER_URL) + path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> dict:
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def ms(text: str) -> float:
        number, suffix = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(number) * unit[suffix]

    pct = {m.group(1): ms(m.group(2)) for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    max_ms = ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "p50": pct["50"],
        "p99": pct["99"],
        "max": max_ms,
        "rps": rps,
        "total": total,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": errors.group(1) if errors else "",
    }


def line(
    label: str, r: dict, floor: dict | None = None, zoom_calls: int | None = None, rss: list | None = None
) -> None:
    text = (
        f"  {label:34} {r['rps']:7.0f} req/s  p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  "
        f"max {r['max']:7.1f} ms  non-2xx {r['non2xx']}"
    )
    if "cpu_ms" in r:
        text += f"  CPU {r['cpu_ms']:.2f} ms/req"
    if rss:
        text += f"  RSS {', '.join(f'{mb} MiB' for mb in rss)}"
    if floor:
        text += f"  | throughput {r['rps'] / floor['rps']:.2f}× floor, p99 {r['p99'] / floor['p99']:.2f}× floor"
    if zoom_calls is not None:
        text += f", Zoom calls {zoom_calls}/{r['total']}"
    if r["errors"]:
        text += f"  socket errors: {r['errors']}"
    print(text, flush=True)


def cpu_seconds(master_pid: int) -> float:
    """User + system CPU of a gunicorn master and its workers so far (from /proc)."""
    pids = [
        str(master_pid),
        *subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout.split(),
    ]
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def with_cpu(master_pid: int, run) -> dict:
    """A wrk run and the server's CPU-ms per request over it."""
    before = cpu_seconds(master_pid)
    result = run()
    result["cpu_ms"] = (cpu_seconds(master_pid) - before) * 1000 / max(1, result["total"])
    return result


def worker_rss(master_pid: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout.split()
    sizes = []
    for pid in children:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        sizes.append(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) // 1024)
    return sizes


def concurrent_gets(url: str, n: int) -> list[tuple[int, str]]:
    session_per_thread = [requests.Session() for _ in range(n)]

    def one(i):
        response = session_per_thread[i].get(url, timeout=10)
        return response.status_code, response.text

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def zak_single_flight(conn, control) -> None:
    from django.core.cache import cache

    url = BROKER_URL + path_of(conn.zak_url)
    for label, expire in (("fresh access token", False), ("access token expired at Zoom", True)):
        cache.clear()
        if expire:
            control._post("/_control/expire-access-tokens", {"user_id": "zu_bench", "seconds_left": 0})
        before = control.counters
        results = concurrent_gets(url, 100)
        after = control.counters
        valid = 0
        for status, body in results:
            if status == 200:
                verdict = control._post("/_control/introspect", {"kind": "zak", "token": body})
                valid += bool(verdict.get("valid"))
        print(
            f"  100 concurrent ZAK GETs, {label}: {valid}/100 valid tokens, "
            f"Zoom ZAK calls {after['zak'] - before['zak']}, refreshes {after['refresh'] - before['refresh']}",
            flush=True,
        )


BARE_PORT = free_port()
BARE_URL = f"http://127.0.0.1:{BARE_PORT}"


def start_bare() -> subprocess.Popen:
    """The bare WSGI callable under the same gunicorn config, on its own port."""
    bare = subprocess.Popen(
        [PY, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", "bench.bare:application"],
        env={**ENV, "PORT": str(BARE_PORT), "PROMETHEUS_MULTIPROC_DIR": "/tmp/bench-bare-metrics"},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(BARE_URL + "/")
    return bare


# (label, target throughput as a share of the bare callable's, target p99 as a multiple of its p99)
TARGETS = {
    "access-token (stored token)": (0.5, 2.5),
    "obf (one Zoom call each)": (0.25, None),
}


def against_bare(conn, control, web_pid: int, bare_pid: int, *, fresh: bool, rounds: int = ROUNDS) -> None:
    """The bare callable, the floor and each callback kind, one run each per round, alternately
    (the machine's noise spreads over all of them); the medians, with each one's ratio to the bare
    callable of the same run and the server's CPU-ms per request."""
    kinds = [
        ("bare WSGI callable (same config)", "/", BARE_URL, bare_pid, None),
        ("floor (DRF view, one cache read)", "/bench/floor", "", web_pid, None),
        ("access-token (stored token)", path_of(conn.access_token_callback_url), "", web_pid, None),
        ("obf (one Zoom call each)", path_of(conn.callback_url("obf", meeting_id=MEETING)), "", web_pid, "obf"),
        (
            "join-token (one Zoom call each)",
            path_of(conn.callback_url("join-token", meeting_id=MEETING)),
            "",
            web_pid,
            "join_token",
        ),
        ("zak (cached: one Zoom call a minute)", path_of(conn.zak_url), "", web_pid, "zak"),
    ]
    runs = {label: [] for label, *_ in kinds}
    calls = dict.fromkeys(runs, 0)
    for _ in range(rounds):
        for label, path, base, pid, counter in kinds:
            before = control.counters if counter else None
            runs[label].append(with_cpu(pid, lambda path=path, base=base: wrk(path, base=base, fresh=fresh)))
            if counter:
                calls[label] += control.counters[counter] - before[counter]
    keys = ("p50", "p99", "max", "rps", "cpu_ms")
    medians = {
        label: {k: statistics.median(run[k] for run in done) for k in keys}
        | {"total": sum(run["total"] for run in done), "non2xx": sum(run["non2xx"] for run in done), "errors": ""}
        for label, done in runs.items()
    }
    bare = medians[kinds[0][0]]
    how = "fresh connections (a new TCP connection per request, as Recall's bots fetch)"
    print(f"{how if fresh else 'kept-alive connections'}; medians of {rounds} alternating runs:", flush=True)
    for label, *_, counter in kinds:
        result = medians[label]
        text = (
            f"  {label:38} {result['rps']:7.0f} req/s  p50 {result['p50']:7.1f} ms  p99 {result['p99']:7.1f} ms  "
            f"CPU {result['cpu_ms']:.2f} ms/req  non-2xx {result['non2xx']}"
        )
        if result is not bare:
            share_now, p99_now = result["rps"] / bare["rps"], result["p99"] / bare["p99"]
            text += f"  | {share_now:.2f}× bare throughput, p99 {p99_now:.1f}× bare"
            share, p99 = TARGETS.get(label, (None, None))
            if fresh and share:
                text += f" (targets ≥ {share}×" + (f", p99 ≤ {p99}×)" if p99 else ")")
        if counter:
            text += f", Zoom calls {calls[label]}/{result['total']}"
        print(text, flush=True)
    print(flush=True)


def start_stack(procs: list[subprocess.Popen]):
    """The fake Zoom, the seeded database and gunicorn with the production config, each process
    appended to `procs` as it starts (the caller stops them); returns (connection, fake Zoom's
    control, gunicorn's master process). Used by bench/brownout.py and bench/profile.py too."""
    procs.append(
        subprocess.Popen(
            [PY, "-m", "fakes.zoom", "--port", str(ZOOM_PORT)], env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL
        )
    )
    wait_for(ZOOM_URL + "/_control/counters")
    conn, control = seed()
    web = subprocess.Popen(
        [PY, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", "brokerproject.wsgi:application"],
        env=ENV,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(web)
    wait_for(BROKER_URL + "/healthz")
    return conn, control, web


def stop_all(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to every process start_stack (or the caller) started; SIGKILL after 10 s."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    procs = []
    try:
        conn, control, web = start_stack(procs)
        workers = os.environ.get("WEB_CONCURRENCY", "3")
        threads = os.environ.get("WEB_THREADS", "32")
        print(
            f"gunicorn (docker/gunicorn.conf.py: {workers} workers × {threads} threads) on {os.cpu_count()} cores; "
            f"fake Zoom answers after {ZOOM_DELAY * 1000:.0f} ms; {CONCURRENCY} concurrent clients, {DURATION} a run;\n"
            "the bare callable, the floor and each callback kind run alternately, fresh connections then kept-alive.\n",
            flush=True,
        )
        bare = start_bare()
        procs.append(bare)
        for base, path in ((BARE_URL, "/"), ("", "/bench/floor"), ("", path_of(conn.access_token_callback_url))):
            wrk(path, base=base, duration="3s")  # warm every worker
        against_bare(conn, control, web.pid, bare.pid, fresh=True)
        against_bare(conn, control, web.pid, bare.pid, fresh=False)
        heavy = with_cpu(web.pid, lambda: wrk(path_of(conn.access_token_callback_url), connections=200))
        line("access-token, 200 concurrent", heavy, rss=worker_rss(web.pid))
        print(f"  {'':34} (RSS target ≤ 150 MiB per worker at 200 concurrent)\n", flush=True)
        zak_single_flight(conn, control)
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
