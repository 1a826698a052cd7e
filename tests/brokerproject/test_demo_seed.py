"""`make demo` twice: the seed runs again over the first run's database without an error."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

A_CREDENTIAL_EXISTS = """
import django
django.setup()
from accounts.models import User
from recallbots.models import RecallCredential, RecallOAuthApp
from zoomauth.models import ZoomApp, ZoomConnection
user = User.objects.create(username="alice")
connection = ZoomConnection.objects.create(user=user, app=ZoomApp.objects.get(), zoom_user_id="zu_alice")
RecallCredential.objects.create(
    connection=connection, recall_app=RecallOAuthApp.objects.get(), recall_id="cred_1", mode="customer_managed"
)
"""


def test_the_demo_seed_runs_twice_after_a_user_connected(tmp_path, _fake_zoom_server, _fake_recall_server):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "brokerproject.settings",
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "REDIS_URL": "",
        "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
        "ZOOM_OAUTH_BASE_URL": _fake_zoom_server.base_url,
        "ZOOM_API_BASE_URL": _fake_zoom_server.base_url + "/v2",
        "RECALL_API_BASE_URL": _fake_recall_server.base_url + "/us-east-1",
        "RECALL_API_KEY": "test-recall-key",
        "RECALL_VERIFICATION_SECRET": "whsec_ZGVtby12ZXJpZmljYXRpb24tc2VjcmV0LTMyYnl0ZXM=",
    }

    def run(*args):
        return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert run("manage.py", "migrate", "-v0").returncode == 0
    first = run("-m", "fakes.seed_demo")
    assert first.returncode == 0, first.stderr[-2000:]
    assert run("-c", A_CREDENTIAL_EXISTS).returncode == 0
    _fake_recall_server.reset()  # the demo's fake Recall restarts empty
    second = run("-m", "fakes.seed_demo")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Demo ready" in second.stdout
