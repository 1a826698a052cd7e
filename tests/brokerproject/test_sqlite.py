"""The embedded default (SQLite): web and worker writing at once must not hit 'database is locked'."""

import os
import subprocess
import sys
from pathlib import Path

from tests.process_env import sqlite_env

ROOT = Path(__file__).resolve().parents[2]

# Each process reads, then writes, inside one transaction, like a worker recording a delivery
# attempt while the web process stores an incoming event: the pattern that used to fail.
WRITER = """
import django, sys
django.setup()
from django.db import transaction
from accounts.models import Heartbeat
from django.utils import timezone
name = sys.argv[1]
for i in range(150):
    with transaction.atomic():
        Heartbeat.objects.filter(name=name).exists()
        Heartbeat.objects.update_or_create(name=name, defaults={"beat_at": timezone.now()})
print("ok")
"""


def test_two_processes_writing_at_once_do_not_lock_each_other_out(tmp_path):
    env = {**os.environ, **sqlite_env(tmp_path)}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, name], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for name in ("web", "worker", "beat")
    ]
    results = [writer.communicate(timeout=120) for writer in writers]
    for out, err in results:
        assert b"database is locked" not in err, err.decode()[-2000:]
        assert out.strip() == b"ok", err.decode()[-2000:]
