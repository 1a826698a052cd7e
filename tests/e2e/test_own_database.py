"""The end-to-end broker has a database of its own: this process reads and writes it during a
scenario, pytest-django's test database (the in-process tests') never sees a row of it, and it
is emptied between scenarios while every process of the broker runs."""

import threading

import psycopg
import pytest
import requests
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder

from accounts.models import User
from zoomauth.models import ZoomApp, ZoomConnection

from .conftest import wait_for
from .test_seed_scenarios import connected

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def rows_in(database: str, table: str) -> int:
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=database) as direct:
        return direct.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608 - a model's table


@pytest.mark.django_db
def test_an_in_process_test_has_pytest_djangos_database_and_the_broker_its_own(broker):
    # This test also makes pytest-django set up its test database when only tests/e2e/ runs.
    assert connections["default"].settings_dict["NAME"] == broker.database.test_database != broker.database.name
    assert rows_in(broker.database.name, "django_migrations") == MigrationRecorder.Migration.objects.count() > 0


def test_the_scenario_and_the_broker_share_a_database_the_in_process_tests_never_see(e2e):
    broker, fake_zoom, _, app = e2e
    connection = connected(broker, fake_zoom)  # a user written here signs in over HTTP there

    assert ZoomConnection.objects.filter(pk=connection.pk, app=app).exists()  # written there, read here
    assert rows_in(broker.database.test_database, User._meta.db_table) == 0
    assert rows_in(broker.database.test_database, ZoomConnection._meta.db_table) == 0


def test_the_clean_empties_the_tables_while_the_broker_keeps_answering(e2e):
    broker, fake_zoom, _, _ = e2e
    connection = connected(broker, fake_zoom)
    stop, answers = threading.Event(), []

    def ask():  # a token callback after another, through the clean
        while not stop.is_set():
            answers.append(requests.get(connection.access_token_callback_url, timeout=10).status_code)

    caller = threading.Thread(target=ask)
    caller.start()
    try:
        wait_for(lambda: answers.count(200) >= 3)
        broker.database.clean()
    finally:
        stop.set()
        caller.join(timeout=15)

    assert (User.objects.count(), ZoomApp.objects.count(), ZoomConnection.objects.count()) == (0, 0, 0)
    assert ContentType.objects.exists() and Permission.objects.exists()  # the migrations' rows stay
    assert all(process.poll() is None for process in broker.processes.values())
    # Ready again once beat's next heartbeat (every second here) is written: the clean emptied
    # the heartbeat table too, and asking at once raced it (a 503 seen in one run of 2026-12-03).
    seen = []

    def ready() -> bool:
        seen.append(requests.get(broker.url + "/readyz", timeout=10))
        return seen[-1].status_code == 200

    try:
        wait_for(ready, timeout=20)
    except AssertionError:
        raise AssertionError(f"/readyz after the clean: {seen[-1].status_code} {seen[-1].text}") from None
    # The broker reads what the clean left: the connection is gone for it too (once its row cache lapses).
    wait_for(lambda: requests.get(connection.access_token_callback_url, timeout=10).status_code != 200, timeout=15)
