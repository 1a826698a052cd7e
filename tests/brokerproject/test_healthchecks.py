"""docker/healthcheck.py worker and beat: healthy only when this container's worker answers and
this beat's heartbeat got recorded; unhealthy when they cannot start."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import Heartbeat

ROOT = Path(__file__).resolve().parents[2]


def healthcheck(kind: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "docker/healthcheck.py", kind],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def test_database_url(transactional_db):
    database = settings.DATABASES["default"]
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


def test_beat_is_healthy_only_with_a_young_heartbeat_recorded_after_it_started(test_database_url):
    beat = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # stands for beat's PID 1
    try:
        env = {"DATABASE_URL": test_database_url, "HEALTHCHECK_PID": str(beat.pid)}
        missing = healthcheck("beat", **env)
        assert missing.returncode == 1
        assert "no heartbeat yet" in missing.stderr

        Heartbeat.objects.create(name="beat", beat_at=timezone.now() - timedelta(seconds=30))
        before_start = healthcheck("beat", **env)  # the beat before a restart sent it
        assert before_start.returncode == 1
        assert "before this beat started" in before_start.stderr

        Heartbeat.objects.filter(name="beat").update(beat_at=timezone.now())
        assert healthcheck("beat", **env).returncode == 0

        Heartbeat.objects.filter(name="beat").update(beat_at=timezone.now() - timedelta(seconds=5))
        stale = healthcheck("beat", **env, BEAT_HEARTBEAT_MAX_AGE="1")
        assert stale.returncode == 1
        assert "last heartbeat" in stale.stderr
        assert "before this beat started" not in stale.stderr
    finally:
        beat.kill()
        beat.wait()


def start_worker(hostname: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "brokerproject", "worker", "--pool=solo", "--queues=healthcheck-test"]
        + [f"--hostname={hostname}", "--loglevel=WARNING", "--without-mingle", "--without-gossip"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    worker.wait(timeout=30)


def test_worker_is_healthy_while_a_worker_of_this_host_answers():
    from brokerproject.celery import app

    env = {"HEALTHCHECK_PING_TIMEOUT": "1"}
    nobody = healthcheck("worker", **env)
    assert nobody.returncode == 1, nobody.stderr
    assert "no worker on" in nobody.stderr

    elsewhere = start_worker("healthcheck-test@elsewhere.example")  # another container's worker
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=["healthcheck-test@elsewhere.example"], timeout=1):
            assert time.monotonic() < deadline, "the other worker never answered"
        other_only = healthcheck("worker", **env)
        assert other_only.returncode == 1, other_only.stderr
    finally:
        stop(elsewhere)

    here = start_worker("healthcheck-test@%h")
    try:
        deadline = time.monotonic() + 60
        while (answered := healthcheck("worker", **env)).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert answered.returncode == 0, answered.stderr
    finally:
        stop(here)
    gone = healthcheck("worker", **env)
    assert gone.returncode == 1, gone.stderr
