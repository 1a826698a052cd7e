import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
from cryptography.fernet import Fernet  # noqa: E402

GOOD_FERNET = Fernet.generate_key().decode()
OLD_FERNET = Fernet.generate_key().decode()
GOOD_SECRET = "s" * 30 + "-production-secret-key-material-1234567890"


def run_settings(env: dict, expression: str = "{}") -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION", "RECALL", "DATABASE_URL"))
    }
    clean.update(env)
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({expression}, default=str))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "brokerproject.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_missing_secrets():
    result = run_settings({"DEBUG": "false"})
    assert result.returncode != 0
    assert "Refusing to start with DEBUG off" in result.stderr
    assert "SECRET_KEY" in result.stderr and "FIELD_ENCRYPTION_KEY" in result.stderr


def test_production_refuses_development_keys():
    from brokerproject.settings import DEV_FIELD_ENCRYPTION_KEY, DEV_SECRET_KEY

    result = run_settings(
        {"DEBUG": "false", "SECRET_KEY": DEV_SECRET_KEY, "FIELD_ENCRYPTION_KEY": DEV_FIELD_ENCRYPTION_KEY}
    )
    assert result.returncode != 0
    assert "development key" in result.stderr


def test_production_starts_with_real_secrets_and_parses_lists():
    result = run_settings(
        {
            "DEBUG": "false",
            "SECRET_KEY": GOOD_SECRET,
            "FIELD_ENCRYPTION_KEY": f"{GOOD_FERNET}, {OLD_FERNET}",
            "ALLOWED_HOSTS": "a.example.com,b.example.com",
            "RECALL_REGION": "eu-central-1",
            "PUBLIC_BASE_URL": "https://broker.example.com/",
        },
        '{"keys": s.FIELD_ENCRYPTION_KEY, "hosts": s.ALLOWED_HOSTS, "recall": s.RECALL_API_BASE_URL, '
        '"public": s.PUBLIC_BASE_URL, "debug": s.DEBUG, "db": s.DATABASES["default"]["ENGINE"], '
        '"broker": s.CELERY_BROKER_URL}',
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["keys"] == [GOOD_FERNET, OLD_FERNET]
    assert values["hosts"] == ["a.example.com", "b.example.com"]
    assert values["recall"] == "https://eu-central-1.recall.ai"
    assert values["public"] == "https://broker.example.com"
    assert values["debug"] is False


def test_defaults_need_no_server():
    env = {"DEBUG": "true", "REDIS_URL": "", "CELERY_BROKER_URL": ""}
    result = run_settings(env, '{"db": s.DATABASES["default"]["NAME"], "broker": s.CELERY_BROKER_URL}')
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["db"].endswith("var/broker.sqlite3")
    assert values["broker"] == "filesystem://"


def test_unknown_recall_region_is_refused():
    result = run_settings({"DEBUG": "true", "RECALL_REGION": "mars-1"})
    assert result.returncode != 0
    assert "RECALL_REGION must be one of" in result.stderr
