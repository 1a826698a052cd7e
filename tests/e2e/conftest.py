"""Real processes: gunicorn, a Celery worker, Celery beat, the fake Zoom and the fake Recall, on
PostgreSQL and Redis, wired together through settings (environment variables) as in production.
The tests drive and inspect the fakes through their control APIs."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
import requests
from django.conf import settings as django_settings
from django.db import OperationalError, connections, transaction

from accounts.models import ApiToken, User
from tests.conftest import CLIENT_ID, CLIENT_SECRET, WEBHOOK_SECRET, WHSEC, consent_at
from tests.parallel import REDIS_DEFAULTS
from tests.polling import poll
from zoomauth.models import ZoomConnection

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# The session broker's Redis database, flushed at the start (its default and each worker's: tests/parallel.py).
E2E_REDIS = os.environ.get("E2E_REDIS_URL") or REDIS_DEFAULTS["E2E_REDIS_URL"]


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
        log_dir: Path,
        database: "BrokerDatabase | None" = None,
        database_name: str = "",
        redis_url: str = E2E_REDIS,
        extra_env: dict | None = None,
        threads: int | None = 8,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.database = database
        database_name = database.name if database else database_name
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

    def signal(self, name: str, signum: int) -> None:
        self.processes[name].send_signal(signum)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
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


class BrokerDatabase:
    """A database of one broker's own, made from the migrations (manage.py migrate, as a deploy
    does) and dropped after it. For the length of a scenario the test process's default alias is
    pointed at it, so the ORM, raw SQL and any service a test calls in-process see what the
    broker's processes see, and the in-process tests keep pytest-django's database to themselves:
    no beat or worker of the broker's ever touches it."""

    # What the migrations write and every process caches (content type ids): kept by the clean.
    KEPT = ("django_migrations", "django_content_type", "auth_permission")
    # Below PostgreSQL's deadlock_timeout (1 s): a broker process made to wait by the clean never
    # waits long enough to be picked as a deadlock's victim; the clean gives up and tries again.
    LOCK_WAIT = "300ms"

    def __init__(self, suffix: str):
        self.settings = connections["default"].settings_dict
        self.test_database = self.settings["NAME"]  # pytest-django's, the in-process tests'
        self.name = f"{self.test_database}_{suffix}"

    def _server(self) -> psycopg.Connection:
        return psycopg.connect(
            host=self.settings["HOST"] or "127.0.0.1",
            port=self.settings["PORT"] or 5432,
            user=self.settings["USER"] or "postgres",
            password=self.settings["PASSWORD"] or None,
            dbname="postgres",
            autocommit=True,
        )

    def create(self) -> "BrokerDatabase":
        with self._server() as server:
            server.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            server.execute(f'CREATE DATABASE "{self.name}"')
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
        env |= {
            "DJANGO_SETTINGS_MODULE": "brokerproject.settings",
            "DEBUG": "true",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.name}",
        }
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, capture_output=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"migrate {self.name} failed:\n{done.stderr.decode()[-3000:]}")
        return self

    def drop(self) -> None:
        with self._server() as server:
            server.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    @contextmanager
    def in_use(self, django_db_blocker):
        """The default alias on this database for one scenario, emptied afterwards. Every thread's
        connection is made from the same settings dict and the process's one pool, so threads a
        test starts follow too."""
        connection = connections["default"]
        with django_db_blocker.unblock():
            assert not connection.in_atomic_block, "an e2e scenario takes no `db` fixture: its database is the broker's"
            self._point_default_at(self.name)
            try:
                yield self
            finally:
                try:
                    self.clean()
                finally:
                    self._point_default_at(self.test_database)

    def _point_default_at(self, name: str) -> None:
        connection = connections["default"]
        connection.close()
        connection.close_pool()  # a pool keeps connections to the database it was made for
        self.settings["NAME"] = name

    def clean(self, timeout: float = 60.0) -> int:
        """TRUNCATE every table but KEPT while the broker's processes run, and return the tries it
        took. Every lock is taken before any row goes, within LOCK_WAIT or not at all: a task or
        request that holds one of the tables (a countdown firing, a status webhook the fake Recall
        still sends) finishes, and one that asks for a table the clean holds waits a moment."""
        connection = connections["default"]
        assert self.settings["NAME"] == self.name
        names = [name for name in connection.introspection.table_names() if name not in self.KEPT]
        tables = ", ".join(connection.ops.quote_name(name) for name in names)
        deadline = time.monotonic() + timeout
        tries = 0
        while True:
            tries += 1
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL statement_timeout = '{self.LOCK_WAIT}'")
                    cursor.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
                    cursor.execute("SET LOCAL statement_timeout = 0")
                    cursor.execute(f"TRUNCATE {tables}")
                return tries
            except OperationalError as exc:
                if not isinstance(exc.__cause__, psycopg.errors.QueryCanceled) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@contextmanager
def broker_database(suffix: str):
    database = BrokerDatabase(suffix).create()
    try:
        yield database
    finally:
        database.drop()


class PrivateRedis:
    """A redis-server of one broker's own: its queues are nobody else's, and a scenario can kill
    it and start it again."""

    def __init__(self, log_dir):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        command = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port)]
        command += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.log_dir)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self._answers(), timeout=10, interval=0.05)

    def _answers(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@contextmanager
def private_broker(name: str, e2e_fakes, tmp_path_factory, **options):
    """A broker of a module's own: its database, and a redis-server nobody else's workers read
    (the session's broker runs beside it and would take its tasks off a shared queue). Yields it
    started, with `.redis` (a PrivateRedis a scenario may kill); `options` go to Broker."""
    private = PrivateRedis(tmp_path_factory.mktemp("redis"))
    fake_zoom, fake_recall = e2e_fakes
    try:
        with broker_database(f"e2e_{name}") as database:
            running = Broker(
                fake_zoom=fake_zoom,
                fake_recall=fake_recall,
                database=database,
                log_dir=tmp_path_factory.mktemp(name),
                redis_url=private.url,
                **options,
            ).start()
            running.redis = private
            try:
                yield running
            finally:
                running.stop()
    finally:
        private.kill()


@dataclass
class World:
    broker: Broker
    zoom: object
    recall: object
    app: object
    api_key: str

    @property
    def api(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"}

    def connect(self, external_user_id: str, zoom_user_id: str) -> ZoomConnection:
        """The customer's backend makes a connect link; the user consents at (fake) Zoom."""
        made = requests.post(
            self.broker.url + "/api/connect-sessions/",
            json={"external_user_id": external_user_id},
            headers=self.api,
            timeout=10,
        )
        assert made.status_code == 201, made.text
        consent_through_link(self.broker.url, self.zoom, made.json()["url"], zoom_user_id)
        return ZoomConnection.objects.get(zoom_user_id=zoom_user_id)

    def users(self, n: int, *, prefix: str = "u") -> list[ZoomConnection]:
        connections = []
        for i in range(n):
            zoom_user_id = f"zu_{prefix}{i}"
            self.zoom.add_user(id=zoom_user_id, email=f"{prefix}{i}@zoom.example")
            self.zoom.add_meeting(id=str(86000000000 + i), host_id=zoom_user_id)
            self.zoom.join(str(86000000000 + i), zoom_user_id)
            connections.append(self.connect(f"cust-{prefix}{i}", zoom_user_id))
        return connections


@contextmanager
def private_world(broker, e2e_fakes, settings, django_db_blocker):
    """A scenario on a private broker: the fakes reset, an app, a superuser's API key; its Redis
    emptied afterwards, so no scheduled task outlives the scenario."""
    with broker.database.in_use(django_db_blocker):
        broker, fake_zoom, fake_recall, app = _scenario(broker, e2e_fakes, settings)
        staff = User.objects.create_user(username="ops", password="x" * 20, is_staff=True, is_superuser=True)
        _, key = ApiToken.issue(user=staff, name="backend")
        yield World(broker=broker, zoom=fake_zoom, recall=fake_recall, app=app, api_key=key)
    redis.Redis.from_url(broker.redis.url).flushdb()


def private_broker_fixture(name: str, **options):
    """A module-scoped fixture of a private broker (`options` go to Broker)."""

    @pytest.fixture(scope="module")
    def running_broker(django_db_setup, e2e_fakes, tmp_path_factory):
        with private_broker(name, e2e_fakes, tmp_path_factory, **options) as running:
            yield running

    return running_broker


def consent_through_link(base_url: str, fake_zoom, link_url: str, zoom_user_id: str):
    """A user opens a connect link (a page with a button), clicks it and consents at the fake
    Zoom as `zoom_user_id`; returns the broker's answer to Zoom's redirect."""
    browser = requests.Session()
    page = browser.get(link_url, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    to_zoom = browser.post(link_url, data={"csrfmiddlewaretoken": token}, allow_redirects=False, timeout=10)
    location = consent_at(fake_zoom, to_zoom.headers["Location"], zoom_user_id)
    done = browser.get(location, allow_redirects=False, timeout=15)
    assert done.status_code in (200, 302), done.text[:300]
    return done


@pytest.fixture(scope="session")
def broker(django_db_setup, e2e_fakes, tmp_path_factory):
    redis.Redis.from_url(E2E_REDIS).flushdb()
    fake_zoom, fake_recall = e2e_fakes
    with broker_database("e2e") as database:
        running = Broker(
            fake_zoom=fake_zoom, fake_recall=fake_recall, database=database, log_dir=tmp_path_factory.mktemp("e2e")
        ).start()
        yield running
        running.stop()


@pytest.fixture
def e2e(broker, e2e_fakes, settings, django_db_blocker):
    """A clean world for one scenario: the broker's database this test's, the fakes reset and
    wired, the broker's settings mirrored here. Afterwards the database is emptied while the
    broker runs (BrokerDatabase.clean): nothing is paused."""
    with broker.database.in_use(django_db_blocker):
        yield _scenario(broker, e2e_fakes, settings)


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
    value = poll(predicate, timeout, interval)
    if not value:
        raise AssertionError("condition not met in time")
    return value
