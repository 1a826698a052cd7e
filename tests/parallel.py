"""The suite on two workers (pytest-xdist, `make test`) sharing one PostgreSQL and one Redis.

Loaded with `-p tests.parallel` (pyproject.toml), before pytest-django reads the settings:
- PostgreSQL: pytest-django gives each worker a test database of its own (test_broker_gw0, …) and
  the end-to-end brokers' databases are named after it, so nothing is shared there.
- Redis has numbered databases instead: the in-process tests' (REDIS_URL: the cache and the Celery
  queues they read) and the session broker's (E2E_REDIS_URL). Each is flushed by the tests that use
  it, so worker N moves both up by 8 × N (modulo 16): worker 0 keeps the given ones.
- The end-to-end modules all run on one worker (one xdist group): they share one session broker
  and its fakes, started once; the in-process tests are spread over both workers around them.
Run alone (`pytest path/to/test.py`, no `-n`), nothing here changes a thing.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

# The defaults: set REDIS_URL or E2E_REDIS_URL to use other databases (both are flushed).
REDIS_DEFAULTS = {"REDIS_URL": "redis://127.0.0.1:6379/5", "E2E_REDIS_URL": "redis://127.0.0.1:6379/7"}
E2E_DIR = Path(__file__).resolve().parent / "e2e"


def worker_index(name: str) -> int:
    """0 for the controller or a run without workers; N for xdist's worker "gwN"."""
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def redis_url_for_worker(url: str, index: int) -> str:
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(database + 8 * index) % 16}"))


def _apply() -> None:
    index = worker_index(os.environ.get("PYTEST_XDIST_WORKER", ""))
    for name, default in REDIS_DEFAULTS.items():
        os.environ[name] = redis_url_for_worker(os.environ.get(name, default), index)


_apply()  # at import: pytest-django imports the settings before any hook of ours would run


def pytest_collection_modifyitems(config, items):
    group = pytest.mark.xdist_group("e2e")
    for item in items:
        if E2E_DIR in Path(str(item.path)).parents:
            item.add_marker(group)
