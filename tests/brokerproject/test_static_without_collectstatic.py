"""DEBUG off on a machine where collectstatic never ran: pages render, static files are served."""

import os
import subprocess
import sys
from pathlib import Path

from tests.process_env import production_env

ROOT = Path(__file__).resolve().parents[2]

FETCH = """
import django
django.setup()
from django.conf import settings
from django.test import Client
assert not settings.STATIC_MANIFEST.exists(), "collectstatic ran here: this test needs a checkout without it"
assert not settings.USE_STATIC_MANIFEST
client = Client()
for path in ("/admin/login/", "/accounts/login/"):
    response = client.get(path, secure=True)
    print(path, response.status_code)
"""


def test_sign_in_pages_render_with_debug_off_and_no_collectstatic(tmp_path):
    env = {**os.environ, **production_env(host="testserver", database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    done = subprocess.run([sys.executable, "-c", FETCH], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["/admin/login/ 200", "/accounts/login/ 200"], (
        done.stdout + done.stderr[-1500:]
    )
