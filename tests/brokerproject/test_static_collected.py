"""DEBUG off after `collectstatic` (as the Docker image builds it): hashed, compressed files,
served with a year's cache lifetime. Runs in a copy of the project, so this checkout keeps no
staticfiles/ (test_static_without_collectstatic.py needs a checkout without it)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.process_env import production_env

ROOT = Path(__file__).resolve().parents[2]

FETCH = """
import re
import django
django.setup()
from django.conf import settings
from django.test import Client
assert settings.USE_STATIC_MANIFEST
client = Client()
page = client.get("/admin/login/", secure=True)
print("page", page.status_code)
css = re.search(r'/static/admin/css/base\\.[0-9a-f]{12}\\.css', page.content.decode()).group(0)
print("css", css)
plain = client.get(css, secure=True)
print("plain", plain.status_code, plain["Cache-Control"])
gzipped = client.get(css, secure=True, headers={"Accept-Encoding": "gzip"})
print("gzip", gzipped.status_code, gzipped.get("Content-Encoding"))
"""


def test_collectstatic_hashes_and_compresses_and_serves_for_a_year(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(
        ROOT,
        app,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "var", "staticfiles", "tests", "fakes", "bench", "__pycache__", ".env"
        ),
    )
    env = {**os.environ, **production_env(host="testserver", database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=app, env=env, check=True)
    collected = app / "staticfiles"
    assert (collected / "staticfiles.json").exists(), "collectstatic did not use the manifest storage"
    assert list(collected.glob("admin/css/base.*.css.gz")), "no compressed, hashed admin/css/base.css"

    done = subprocess.run([sys.executable, "-c", FETCH], cwd=app, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["page"] == "200"
    status, cache_control = lines["plain"].split(" ", 1)
    assert status == "200"
    max_age = int(re.search(r"max-age=(\d+)", cache_control).group(1))
    assert max_age >= 365 * 24 * 3600, cache_control
    assert lines["gzip"] == "200 gzip"
