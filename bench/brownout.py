"""Token callbacks under a Zoom brownout on a busy host (issue #26): is every callback answered
within Recall's 5 s? Run: `python bench/brownout.py [--busy N] [--seconds S] [--rate R]`.

The production stack as bench/callbacks.py runs it (gunicorn with docker/gunicorn.conf.py,
PostgreSQL, Redis, the fake Zoom as its own process). Zoom mints answer 6 s late (the fault
tests' brownout), while `--busy` processes burn CPU beside the broker (default: one per core),
and callbacks (OBF, join-token, ZAK, access-token) arrive at a fixed rate. Each answer's time
is measured by the client, from sending to the whole body: what Recall sees, less the network.

The floor, printed beside it, is measured in the same run on the same busy host: the same rate
of GETs to /bench/floor (a DRF view reading one cached value), so the host's own delay is seen
apart from the broker's.
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.callbacks import BROKER_URL, ENV, MEETING, path_of, start_stack, stop_all  # noqa: E402

RECALL_WAITS = 5.0
MINT_LATE = 6.0


def burn() -> None:
    while True:
        pass


def load(paths: list[str], *, seconds: float, rate: float) -> list[tuple[int | None, float]]:
    """GET the paths in turn, `rate` a second for `seconds`: (status or None, seconds to answer)."""
    session = threading.local()
    results: list[tuple[int | None, float]] = []

    def one(path: str) -> None:
        http = getattr(session, "http", None) or requests.Session()
        session.http = http
        sent = time.monotonic()
        try:
            response = http.get(BROKER_URL + path, timeout=15)
            status = response.status_code
        except requests.RequestException:
            status = None
        results.append((status, time.monotonic() - sent))

    with ThreadPoolExecutor(max_workers=200) as pool:
        started = time.monotonic()
        n = 0
        while (now := time.monotonic()) - started < seconds:
            pool.submit(one, paths[n % len(paths)])
            n += 1
            time.sleep(max(0.0, started + n / rate - now))
    return results


def summary(results: list[tuple[int | None, float]]) -> dict:
    times = sorted(t for _, t in results)
    return {
        "n": len(results),
        "late": sum(t > RECALL_WAITS or status is None for status, t in results),
        "p50": statistics.median(times),
        "p99": times[int(len(times) * 0.99) - 1] if len(times) >= 100 else times[-1],
        "max": times[-1],
        "statuses": sorted({status for status, _ in results}, key=str),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="CPU-burning processes beside (0: none)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of brownout load")
    parser.add_argument("--rate", type=float, default=20.0, help="callbacks a second")
    args = parser.parse_args()
    procs: list[subprocess.Popen] = []
    burners = []
    try:
        conn, control, web = start_stack(procs)
        load(["/bench/floor"], seconds=2, rate=args.rate)  # warm every worker
        import multiprocessing

        burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(args.busy)]
        for burner in burners:
            burner.start()
        callbacks = [
            path_of(conn.callback_url("obf", meeting_id=MEETING)),
            path_of(conn.callback_url("join-token", meeting_id=MEETING)),
            path_of(conn.zak_url),
            path_of(conn.access_token_callback_url),
        ]
        floor = summary(load(["/bench/floor"], seconds=min(10.0, args.seconds), rate=args.rate))
        control.configure(mint_answer_delay=MINT_LATE)
        brownout = summary(load(callbacks, seconds=args.seconds, rate=args.rate))
        control.configure(mint_answer_delay=0.0)
        print(
            f"gunicorn (docker/gunicorn.conf.py) on {os.cpu_count()} cores beside {args.busy} CPU-burning processes; "
            f"Zoom mints answer {MINT_LATE:.0f} s late; {args.rate:.0f} callbacks/s (obf, join-token, zak, "
            f"access-token in turn) for {args.seconds:.0f} s; CALLBACK_TIME_BUDGET_SECONDS="
            f"{ENV.get('CALLBACK_TIME_BUDGET_SECONDS', 'default')}",
            flush=True,
        )
        for label, figures in (("floor (/bench/floor, same host)", floor), ("callbacks in the brownout", brownout)):
            print(
                f"  {label:34} n={figures['n']:5}  p50 {figures['p50'] * 1000:7.0f} ms  "
                f"p99 {figures['p99'] * 1000:7.0f} ms  max {figures['max'] * 1000:7.0f} ms  "
                f"over {RECALL_WAITS:.0f} s or unanswered: {figures['late']}  statuses {figures['statuses']}",
                flush=True,
            )
        verdict = "yes" if brownout["late"] == 0 else f"NO ({brownout['late']} of {brownout['n']})"
        print(f"  every callback answered within {RECALL_WAITS:.0f} s: {verdict}", flush=True)
    finally:
        for burner in burners:
            burner.terminate()
        stop_all(procs)


if __name__ == "__main__":
    main()
