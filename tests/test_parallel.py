"""Two test workers never share a Redis database (tests/parallel.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.parallel import redis_url_for_worker, worker_index

ROOT = Path(__file__).resolve().parents[1]


def test_the_first_worker_keeps_its_databases_and_the_second_moves_them_up_by_eight():
    assert worker_index("") == 0 and worker_index("gw0") == 0 and worker_index("gw1") == 1
    assert redis_url_for_worker("redis://127.0.0.1:6379/5", 0) == "redis://127.0.0.1:6379/5"
    assert redis_url_for_worker("redis://127.0.0.1:6379/5", 1) == "redis://127.0.0.1:6379/13"
    assert redis_url_for_worker("rediss://:pw@cache.example:6380/7", 1) == "rediss://:pw@cache.example:6380/15"


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/8",  # the second worker would need 16
        "redis://127.0.0.1:6379",  # no database number
        "redis://127.0.0.1:6379/0?db=3",  # the query's number wins in redis-py
        "unix:///run/redis.sock?db=2",
    ],
)
def test_a_url_the_second_worker_cannot_move_is_refused(url):
    assert redis_url_for_worker(url, 0) == url  # one worker: used as given
    with pytest.raises(ValueError, match="two test workers need"):
        redis_url_for_worker(url, 1)


def collect(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "REDIS_URL", "E2E_REDIS_URL"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/test_parallel.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (("-n", "3"), {}, "at most 2 test workers"),
        (("-n", "2"), {"REDIS_URL": "redis://127.0.0.1:6379/9"}, "below 8"),
        (("-n", "2"), {"REDIS_URL": "redis://127.0.0.1:6379/3", "E2E_REDIS_URL": "redis://127.0.0.1:6379/3"}, "share"),
        (("-n", "2"), {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/3"}, "CELERY_BROKER_URL is set"),
    ],
)
def test_a_run_whose_workers_would_share_a_database_stops_before_any_test(args, env, said):
    done = collect(*args, **env)
    assert done.returncode != 0
    assert said in done.stderr + done.stdout


def test_two_workers_on_the_defaults_start():
    done = collect("-n", "2")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_end_to_end_module_runs_on_one_worker_and_the_others_on_either(tmp_path):
    """Modules under tests/e2e/ are one unit of work; without that, loadfile spreads them."""
    for folder, count in (("tests/e2e", 4), ("tests/other", 6)):
        (tmp_path / folder).mkdir(parents=True)
        for n in range(count):
            (tmp_path / folder / f"test_{folder.rsplit('/', 1)[-1]}_{n}.py").write_text(
                "import os, time\n\n\ndef test_it():\n    time.sleep(0.3)\n"
                "    print('ran on', os.environ['PYTEST_XDIST_WORKER'])\n"
            )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.parallel",
            "-n",
            "2",
            "--dist",
            "loadfile",
            "-v",
            "-p",
            "no:django",
        ],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    workers: dict[str, set[str]] = {}
    for worker, folder in re.findall(r"\[(gw\d+)\].*PASSED tests/(\w+)/", done.stdout):
        workers.setdefault(folder, set()).add(worker)
    assert len(workers["e2e"]) == 1, done.stdout
    assert workers["other"] == {"gw0", "gw1"}, done.stdout
