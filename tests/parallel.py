"""The suite on two workers (pytest-xdist, `make test`) sharing one PostgreSQL and one Redis.

Loaded with `-p tests.parallel` (pyproject.toml), before pytest-django reads the settings:
- PostgreSQL: pytest-django gives each worker a test database of its own (test_broker_gw0, _gw1)
  and the end-to-end brokers' databases are named after it.
- Redis has numbered databases instead, and the tests flush theirs: the in-process tests'
  (REDIS_URL: the cache and the Celery queues they read) and the session broker's (E2E_REDIS_URL).
  The second worker moves both up by 8, so two workers need them below 8 (the defaults are 5
  and 7: the second worker uses 13 and 15). Anything else is refused before a test runs.
- `--dist loadfile` (the Makefile), with one change (pytest_xdist_make_scheduler below): a module
  runs on one worker, and every end-to-end module on the same one, so the session broker and the
  fakes start once and no two broker stacks run at once on the machine; the in-process modules go
  to whichever worker is free.
A run without workers (`pytest path/to/test.py`) only gets the defaults.
"""

import os
from urllib.parse import urlsplit, urlunsplit

import pytest

# The defaults: set REDIS_URL or E2E_REDIS_URL to use other databases (both are flushed).
REDIS_DEFAULTS = {"REDIS_URL": "redis://127.0.0.1:6379/5", "E2E_REDIS_URL": "redis://127.0.0.1:6379/7"}
SHIFT = 8  # Redis has 16 databases: the second worker's are the first's plus 8
MAX_WORKERS = 2
E2E_SCOPE = "tests/e2e/"


def worker_index(name: str) -> int:
    """0 for the controller or a run without workers; N for xdist's worker "gwN"."""
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def redis_url_for_worker(url: str, index: int) -> str:
    """`url` for worker `index`; a ValueError says why `url` cannot be shared by two workers."""
    if index == 0:
        return url
    parts = urlsplit(url)
    database = parts.path.strip("/")
    if parts.scheme not in ("redis", "rediss") or "db=" in parts.query or not database.isdigit():
        raise ValueError(f"{url!r}: two test workers need a redis:// URL that ends in a database number")
    if int(database) >= SHIFT:
        raise ValueError(f"{url!r}: two test workers need a database below {SHIFT} (the second uses it plus {SHIFT})")
    return urlunsplit(parts._replace(path=f"/{int(database) + SHIFT * index}"))


def _urls() -> dict[str, str]:
    return {name: os.environ.get(name) or default for name, default in REDIS_DEFAULTS.items()}


def _apply() -> None:
    index = worker_index(os.environ.get("PYTEST_XDIST_WORKER", ""))
    for name, url in _urls().items():
        os.environ[name] = redis_url_for_worker(url, index) if index else url


_apply()  # at import: pytest-django imports the settings before any hook of ours would run


def pytest_configure(config):
    """On the controller: refuse a run whose workers would share a Redis database, before any starts."""
    workers = int(getattr(config.option, "numprocesses", None) or 0)
    if os.environ.get("PYTEST_XDIST_WORKER") or workers < 2:
        return
    if os.environ.get("CELERY_BROKER_URL"):
        raise pytest.UsageError(
            "CELERY_BROKER_URL is set: the test workers would share its queues. Unset it (the tests use"
            " REDIS_URL), or run one worker (TEST_WORKERS=1 make test)"
        )
    if workers > MAX_WORKERS:
        raise pytest.UsageError(f"at most {MAX_WORKERS} test workers (-n): Redis has room for two sets of databases")
    urls = _urls()
    try:
        used = [redis_url_for_worker(url, index) for index in range(workers) for url in urls.values()]
    except ValueError as exc:
        raise pytest.UsageError(f"{exc}; or run one worker (TEST_WORKERS=1 make test)") from None
    if len(set(used)) != len(used):
        raise pytest.UsageError(f"REDIS_URL and E2E_REDIS_URL would share a database across workers: {used}")


def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, with tests/e2e/ as one unit of work."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class EndToEndTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return E2E_SCOPE if nodeid.startswith(E2E_SCOPE) else super()._split_scope(nodeid)

    return EndToEndTogether(config, log)
