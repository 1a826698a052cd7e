"""A process told to stop lets a token refresh under way finish and store: gunicorn's graceful
timeout, Celery's soft shutdown and compose's stop_grace_period are the refresh's deadline plus
the lease margin, or more. The end-to-end proof is tests/e2e/test_refresh_once.py."""

import os
import re
import runpy
from pathlib import Path
from unittest import mock

import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def refresh_budget() -> float:
    return settings.ZOOM_REFRESH_TIMEOUT + settings.ZOOM_REFRESH_LEASE_MARGIN_SECONDS


def gunicorn_graceful_timeout(**env: str) -> float:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZOOM_REFRESH")}
    with mock.patch.dict(os.environ, {**base, **env}, clear=True):
        return runpy.run_path(str(ROOT / "docker" / "gunicorn.conf.py"))["graceful_timeout"]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", value)
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_gunicorn_waits_for_a_refresh_under_way():
    assert gunicorn_graceful_timeout() == refresh_budget() == 75
    assert gunicorn_graceful_timeout(ZOOM_REFRESH_TIMEOUT="90", ZOOM_REFRESH_LEASE_MARGIN_SECONDS="10.5") == 101
    assert isinstance(gunicorn_graceful_timeout(), int)  # gunicorn refuses anything else


def test_celerys_soft_shutdown_gives_a_refresh_its_deadline_and_margin():
    from brokerproject.celery import app

    assert app.conf.worker_soft_shutdown_timeout == refresh_budget()


def test_compose_gives_every_broker_service_longer_than_gunicorn_to_stop():
    compose = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())
    broker_services = [name for name, service in compose["services"].items() if "build" in service]
    assert {"web", "worker-refresh"} <= set(broker_services)
    for name in broker_services:
        grace = compose["services"][name].get("stop_grace_period")
        assert grace and seconds(grace) > gunicorn_graceful_timeout(), name
