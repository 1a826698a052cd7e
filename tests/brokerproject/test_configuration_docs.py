"""Every variable settings.py reads is in docker/.env.example and the configuration table of
docs/operations.md (the README links to it and names the essential ones); the web
container's health check passes with the settings of .env.example."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def variables_read_by_settings() -> set[str]:
    source = (ROOT / "brokerproject" / "settings.py").read_text()
    return set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z0-9_]+)"', source))


def test_every_setting_is_in_env_example_and_the_readme():
    names = variables_read_by_settings()
    assert len(names) > 30
    example = (ROOT / "docker" / ".env.example").read_text()
    table = (ROOT / "docs" / "operations.md").read_text()
    readme = (ROOT / "README.md").read_text()
    assert not [n for n in names if not re.search(rf"^#?\s*{n}=", example, re.M)], "missing in docker/.env.example"
    assert not [n for n in names if f"`{n}`" not in table], "missing in docs/operations.md's configuration table"
    assert "docs/operations.md#configuration" in readme  # the README says where the table is


def example_value(name: str) -> str:
    text = (ROOT / "docker" / ".env.example").read_text()
    return re.search(rf"^{name}=(.*)$", text, re.M).group(1).strip()


@pytest.mark.django_db(transaction=True)
def test_the_web_healthcheck_passes_with_the_example_allowed_hosts(live_server, settings):
    settings.ALLOWED_HOSTS = example_value("ALLOWED_HOSTS").split(",")
    settings.DEBUG = False
    env = {
        **os.environ,
        "ALLOWED_HOSTS": example_value("ALLOWED_HOSTS"),
        "HEALTHCHECK_URL": live_server.url + "/healthz",
    }
    done = subprocess.run([sys.executable, "docker/healthcheck.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    env["ALLOWED_HOSTS"] = "somewhere.else.example"  # a Host Django refuses: the check must fail
    done = subprocess.run([sys.executable, "docker/healthcheck.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 1
