"""requirements/base.txt alone runs production: a fresh virtualenv with nothing else imports
what the web, worker and beat entrypoints load (docker/entrypoint.sh), Redis transport included.

The development virtualenv cannot show a missing runtime dependency: the test tools bring their
own (kombu's Redis transport needs `packaging`, which only pytest brought). pip's cache is reused,
so the install takes seconds once the wheels have been downloaded.
"""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.process_env import production_env

ROOT = Path(__file__).resolve().parents[1]

LOAD = r"""
import importlib
import io
import pkgutil
import runpy

import django

django.setup()

from django.core.management import call_command
from django.db import connection

# web: gunicorn with its config, the WSGI application (middleware), every URL's view, the database.
config = runpy.run_path("docker/gunicorn.conf.py")
from gunicorn.util import load_class

load_class(config["logger_class"])
importlib.import_module("gunicorn.workers." + config["worker_class"])
from brokerproject.wsgi import application  # noqa: F401
from django.urls import get_resolver

get_resolver().url_patterns
call_command("check", stdout=io.StringIO())
connection.ensure_connection()
print("database", connection.vendor)

# Every module of the project: views, tasks, admin, management commands, migrations.
for package_name in ("brokerproject", "accounts", "zoomauth", "recallbots", "webhooks"):
    package = importlib.import_module(package_name)
    for info in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
        importlib.import_module(info.name)

# worker and beat: the Celery app, its tasks, the Redis transport (connected), pool and scheduler.
from celery.concurrency import get_implementation
from celery.utils.imports import symbol_by_name

from brokerproject.celery import app

app.loader.import_default_modules()
assert "accounts.tasks.heartbeat_record" in app.tasks, sorted(app.tasks)
with app.connection_for_write() as broker:
    broker.ensure_connection(max_retries=1, timeout=2)
    print("broker", broker.transport.driver_name)
import celery.apps.beat  # noqa: F401
import celery.apps.worker  # noqa: F401

get_implementation(app.conf.worker_pool)
symbol_by_name(app.conf.beat_scheduler)
print("loaded")
"""


def _database_url() -> str:
    """The test run's PostgreSQL server, its always-present `postgres` database (no tables needed)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/postgres"))


def test_fresh_virtualenv_with_base_requirements_loads_web_worker_and_beat(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", "requirements/base.txt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        **production_env(host="broker.example.com", database_url=_database_url(), redis_url=os.environ["REDIS_URL"]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run([python, "-c", LOAD], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["database postgresql", "broker redis", "loaded"], done.stdout
