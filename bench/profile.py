"""Where a token callback's CPU goes: flame graphs of one gunicorn worker under load. Run with
`make profile`.

The same stack as bench/callbacks.py (gunicorn with docker/gunicorn.conf.py, PostgreSQL, Redis,
the fake Zoom answering after 100 ms, wrk with 100 concurrent clients). py-spy samples one worker
for 12 s while wrk runs, counting only the thread that holds the GIL (`--gil`): with 32 threads
per worker, the others are mostly waiting for it, and sampling them would blame whatever they
wait in. Writes bench/flamegraph-<kind>.svg (open it in a browser; click to zoom) for the stored
access token and for OBF (one Zoom call each), and prints the heaviest frames of each.
"""

import collections
import os
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import callbacks as stack  # noqa: E402

PY_SPY = Path(sys.executable).with_name("py-spy")
SECONDS = 12


def record(worker_pid: int, path: str, output: Path, fmt: str) -> None:
    spy = subprocess.Popen(
        [str(PY_SPY), "record", "--gil", "-p", str(worker_pid), "-d", str(SECONDS), "-r", "250"]
        + ["-f", fmt, "-o", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    load = threading.Thread(target=stack.wrk, args=(path,), kwargs={"duration": f"{SECONDS + 2}s", "fresh": True})
    load.start()
    _, err = spy.communicate()
    load.join()
    if spy.returncode != 0:
        raise SystemExit(f"py-spy failed: {err.decode()[-500:]}")


def heaviest(raw: Path, top: int = 15) -> None:
    """The frames with the largest share of samples, callees included (py-spy's raw format)."""
    total, inclusive = 0, collections.Counter()
    for line in raw.read_text().splitlines():
        frames, count = line.rsplit(" ", 1)
        total += int(count)
        for frame in {frame.split(" (")[0] for frame in frames.split(";")}:
            inclusive[frame] += int(count)
    if total == 0:
        print("    no samples: py-spy saw no thread holding the GIL in that worker; run it again")
        return
    # The server's and Django's frames that every request passes through say nothing; what they
    # call does.
    through = ("Thread.", "_worker", "_WorkItem", "ThreadWorker.handle", "<module>", "_run_", "WSGIHandler.")
    through += ("BaseHandler.", "convert_exception", "MiddlewareMixin.", "csrf_exempt", "View.as_view")
    shown = [(frame, n) for frame, n in inclusive.most_common() if not frame.startswith(through)]
    shown = [(frame, n) for frame, n in shown if not frame.endswith(("Middleware.__call__", ".dispatch"))][:top]
    for frame, n in shown:
        print(f"    {100 * n / total:5.1f} %  {frame}")


def main() -> None:
    if not PY_SPY.exists():
        raise SystemExit("py-spy is missing: make profile installs it (requirements/dev.txt)")
    procs = []
    try:
        conn, _, web = stack.start_stack(procs)
        worker = int(subprocess.run(["pgrep", "-P", str(web.pid)], capture_output=True, text=True).stdout.split()[0])
        for kind, url in (
            ("access-token", conn.access_token_callback_url),
            ("obf", conn.callback_url("obf", meeting_id=stack.MEETING)),
        ):
            path = stack.path_of(url)
            stack.wrk(path, duration="3s", fresh=True)  # warm
            svg = ROOT / "bench" / f"flamegraph-{kind}.svg"
            raw = Path(os.environ.get("TMPDIR", "/tmp")) / f"broker-profile-{kind}.txt"
            record(worker, path, svg, "flamegraph")
            record(worker, path, raw, "raw")
            print(f"{kind}: {svg.relative_to(ROOT)}; heaviest frames of one worker (GIL holder, callees included):")
            heaviest(raw)
    finally:
        stack.stop_all(procs)


if __name__ == "__main__":
    main()
