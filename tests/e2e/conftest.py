"""Real processes: gunicorn, a Celery worker, Celery beat, the fake Zoom and the fake Recall, on
PostgreSQL and Redis, wired together through settings (environment variables) as in production.
The tests drive and inspect the fakes through their control APIs."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests
from django.conf import settings as django_settings
from django.db import connection as db_connection

from tests.conftest import CLIENT_ID, CLIENT_SECRET, WEBHOOK_SECRET, WHSEC

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# Flushed at the start of the end-to-end tests: point it elsewhere if database 7 is in use.
E2E_REDIS = os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379/7")


METRICS_TOKEN = "e2e-metrics-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """The three broker processes and what they need to be reached."""

    def __init__(
        self,
        *,
        fake_zoom,
        fake_recall,
        database_name: str,
        log_dir: Path,
        redis_url: str = E2E_REDIS,
        extra_env: dict | None = None,
        threads: int | None = 8,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))},
            "DJANGO_SETTINGS_MODULE": "brokerproject.settings",
            "DEBUG": "true",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database_name}",
            "CONN_MAX_AGE": "0",
            "REDIS_URL": redis_url,
            "PUBLIC_BASE_URL": self.url,
            "ZOOM_OAUTH_BASE_URL": fake_zoom.base_url,
            "ZOOM_API_BASE_URL": fake_zoom.base_url + "/v2",
            "RECALL_API_BASE_URL": fake_recall.base_url + "/us-east-1",
            "RECALL_API_KEY": "test-recall-key",
            "RECALL_VERIFICATION_SECRET": WHSEC,
            "BEAT_HEARTBEAT_INTERVAL_SECONDS": "1",
            "BEAT_REFRESH_INTERVAL_SECONDS": "2",
            "BEAT_SWEEP_INTERVAL_SECONDS": "2",
            "LOG_LEVEL": "INFO",
            "METRICS_TOKEN": METRICS_TOKEN,
            "PROMETHEUS_MULTIPROC_DIR": str(log_dir / "metrics"),
            "CALLBACK_ROW_CACHE_SECONDS": "2",  # production's default (pytest's env turns it off)
            **(extra_env or {}),
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.threads = threads

    def start(self) -> "Broker":
        self.commands = {
            "web": [
                str(VENV_BIN / "gunicorn"),
                "brokerproject.wsgi:application",
                "-c",
                "docker/gunicorn.conf.py",
                # threads=None: docker/gunicorn.conf.py's own workers and threads (the benchmarks).
                *(["--workers", "2", "--threads", str(self.threads)] if self.threads else []),
            ],
            # One worker per queue, as docker compose runs them.
            **{
                f"worker-{queue}": [
                    str(VENV_BIN / "celery"),
                    "-A",
                    "brokerproject",
                    "worker",
                    "--queues",
                    queue,
                    "--hostname",
                    f"{queue}@%h",
                    "--concurrency",
                    "4" if queue in ("refresh", "zoom-events") else "2",
                    "-l",
                    "INFO",
                ]
                for queue in django_settings.CELERY_QUEUES_BY_JOB
            },
            "beat": [
                str(VENV_BIN / "celery"),
                "-A",
                "brokerproject",
                "beat",
                "-l",
                "INFO",
                "--schedule",
                str(self.log_dir / "celerybeat-schedule"),
            ],
        }
        for name in self.commands:
            self.launch(name)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()  # never leave a worker behind to eat the next run's tasks
            raise
        return self

    def _wait_until_ready(self, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        last = ""
        while time.time() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.log(name)[-3000:]}")
            try:
                response = requests.get(self.url + "/readyz", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise RuntimeError(f"the broker did not become ready: {last}\n{self.log('worker-celery')[-2000:]}")

    def launch(self, name: str) -> None:
        """Start one of the processes (again, after a kill)."""
        env = {**self.env, "PORT": str(self.port)}
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            self.commands[name], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def revive(self) -> list[str]:
        """Start again every process that has exited, as docker compose's restart policy does."""
        revived = [name for name, process in self.processes.items() if process.poll() is not None]
        for name in revived:
            self.launch(name)
        return revived

    def kill(self, name: str) -> None:
        """kill -9 of one process and its children (a worker's pool included)."""
        try:
            os.killpg(self.processes[name].pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.processes[name].wait(timeout=10)

    def pause_group(self, name: str, signum: int) -> None:
        """A signal to a process and its children (a worker's pool): SIGSTOP, SIGCONT."""
        try:
            os.killpg(self.processes[name].pid, signum)
        except ProcessLookupError:
            pass

    def signal(self, name: str, signum: int) -> None:
        self.processes[name].send_signal(signum)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for name in self.processes:  # a stopped process ignores SIGTERM until continued
            self.pause_group(name, signal.SIGCONT)
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


class FakeProcess:
    """A fake started as its own process (python -m fakes.zoom / recall), as in make demo."""

    def __init__(self, module: str, *args: str, log_dir: Path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        log = open(log_dir / f"{module.rsplit('.', 1)[1]}.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(self.port), *args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{module} did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def e2e_fakes(tmp_path_factory):
    from fakes.control import FakeRecallControl, FakeZoomControl

    log_dir = tmp_path_factory.mktemp("fakes")
    zoom = FakeProcess("fakes.zoom", log_dir=log_dir)
    recall_process = FakeProcess("fakes.recall", "--zoom", zoom.base_url, log_dir=log_dir)
    yield FakeZoomControl(zoom.base_url), FakeRecallControl(recall_process.base_url)
    recall_process.stop()
    zoom.stop()


@pytest.fixture(scope="session")
def broker(django_db_setup, django_db_blocker, e2e_fakes, tmp_path_factory):
    redis.Redis.from_url(E2E_REDIS).flushdb()
    with django_db_blocker.unblock():
        database_name = db_connection.settings_dict["NAME"]
    fake_zoom, fake_recall = e2e_fakes
    running = Broker(
        fake_zoom=fake_zoom,
        fake_recall=fake_recall,
        database_name=database_name,
        log_dir=tmp_path_factory.mktemp("e2e"),
    ).start()
    yield running
    running.stop()


def _busy_sessions() -> int:
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
        )
        return cursor.fetchone()[0]


def wait_for_quiet_database(timeout: float = 10.0) -> None:
    """Wait until no other session of the test database is inside a statement or transaction."""
    quiet_polls = 0
    deadline = time.time() + timeout
    while time.time() < deadline and quiet_polls < 3:
        quiet_polls = quiet_polls + 1 if _busy_sessions() == 0 else 0
        time.sleep(0.05)


def quiesce(broker: "Broker") -> None:
    """Before pytest-django truncates every table: beat, the workers and the web paused, never while
    one of them is inside a transaction. A countdown task firing mid-TRUNCATE deadlocks it, and so
    does a request the fakes still send (Recall's status webhooks for the scenario's bots)."""
    broker.signal("beat", signal.SIGSTOP)
    paused = [name for name in broker.processes if name != "beat"]
    for _ in range(50):
        wait_for_quiet_database()
        for name in paused:
            broker.pause_group(name, signal.SIGSTOP)
        if _busy_sessions() == 0:
            return
        for name in paused:
            broker.pause_group(name, signal.SIGCONT)
    raise RuntimeError("the broker's workers would not leave the database alone")


def resume(broker: "Broker") -> None:
    """Continue every process. gunicorn's workers first: their master kills a worker whose
    heartbeat is older than its timeout (30 s) by the monotonic clock, which ran on during the
    pause, so the workers get to beat before the master looks."""
    web = broker.processes.get("web")
    if web is not None and web.poll() is None:
        children = subprocess.run(["pgrep", "-P", str(web.pid)], capture_output=True, text=True).stdout.split()
        for pid in children:
            try:
                os.kill(int(pid), signal.SIGCONT)
            except ProcessLookupError:
                pass
        time.sleep(0.3)
    for name in broker.processes:
        broker.pause_group(name, signal.SIGCONT)


@pytest.fixture
def e2e(broker, transactional_db, e2e_fakes, settings):
    """A clean world for one scenario: fakes reset and wired, the broker's settings mirrored here.

    Afterwards the broker's processes are paused outside any transaction (quiesce), and stay so
    until the next scenario: pytest-django's TRUNCATE of every table deadlocks with no task or
    request, and the tests that run in-process after the e2e ones share the test database with
    no beat or worker of the broker's refreshing their connections.
    """
    resume(broker)
    yield _scenario(broker, e2e_fakes, settings)
    quiesce(broker)


def _scenario(broker, e2e_fakes, settings):
    fake_zoom, fake_recall = e2e_fakes
    fake_zoom.reset()
    fake_recall.reset()
    fake_recall.configure(
        status_webhook_url=broker.url + "/recall/webhooks/bot-status/", verification_secret=WHSEC, step_seconds=0.2
    )
    settings.PUBLIC_BASE_URL = broker.url
    settings.ZOOM_OAUTH_BASE_URL = fake_zoom.base_url
    settings.ZOOM_API_BASE_URL = fake_zoom.base_url + "/v2"
    settings.RECALL_API_BASE_URL = fake_recall.base_url + "/us-east-1"
    settings.RECALL_API_KEY = "test-recall-key"
    from zoomauth.models import ZoomApp

    app = ZoomApp.objects.create(
        name="Notetaker", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET
    )
    fake_zoom.add_app(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[app.redirect_uri])
    fake_zoom.add_user(id="zu_alice", email="alice@zoom.example", pmi="5551234567")
    fake_zoom.add_user(id="zu_service", email="bots@zoom.example")
    return broker, fake_zoom, fake_recall, app


class Browserless:
    """A person with a browser session, over real HTTP (requests keeps cookies and CSRF)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()

    def _csrf(self, path: str) -> str:
        page = self.http.get(self.base_url + path, timeout=10)
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)

    def sign_in(self, username: str, password: str) -> None:
        token = self._csrf("/accounts/login/")
        response = self.http.post(
            self.base_url + "/accounts/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
            timeout=10,
        )
        assert "Sign out" in response.text, response.text[:500]

    def connect_zoom(self, zoom_user_id: str) -> requests.Response:
        """Follow /zoom/connect/ to the fake Zoom's consent page, allow, and land on the callback."""
        consent = self.http.get(self.base_url + "/zoom/connect/", timeout=10)
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', consent.text))
        import html

        fields = {k: html.unescape(v) for k, v in fields.items()}
        action = consent.url.split("?")[0]
        return self.http.post(action, data={**fields, "user_id": zoom_user_id}, timeout=15)

    def post_form(self, path: str, data: dict) -> requests.Response:
        token = self._csrf(path)
        return self.http.post(self.base_url + path, data={**data, "csrfmiddlewaretoken": token}, timeout=15)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
