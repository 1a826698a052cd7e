"""The one claim-by-lease helper: taken once, aged by the database's clock, fenced by its holder,
on PostgreSQL and on the embedded SQLite."""

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection as db
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Now

from brokerproject import claims
from tests.process_env import sqlite_env
from webhooks.models import Event, EventDelivery, EventEndpoint

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
UNTIL = claims.Lease(field="next_attempt_at", holder_field="claim_holder")
# A lease kept as its start (like the refresh's refresh_started_at), on a nullable column.
STARTED = claims.Lease(field="last_attempt_at", holder_field="claim_holder", from_start=True)


def make_deliveries(n: int) -> list[int]:
    endpoint = EventEndpoint.objects.create(url="https://backend.example/hooks", secret=EventEndpoint.new_secret())
    return [
        EventDelivery.objects.create(
            event=Event.objects.create(type="bot.status_changed", data={}), endpoint=endpoint
        ).pk
        for _ in range(n)
    ]


def test_a_claim_is_taken_once_and_only_its_holder_releases_it():
    [pk] = make_deliveries(1)
    rows = EventDelivery.objects.filter(pk=pk)
    first, second = claims.new_holder(), claims.new_holder()
    assert claims.claim(rows, UNTIL, holder=first, seconds=30, attempts=F("attempts") + 1) == 1
    assert claims.claim(rows, UNTIL, holder=second, seconds=30) == 0
    assert claims.release(rows, UNTIL, holder=second, last_error="not mine") == 0
    assert EventDelivery.objects.get(pk=pk).last_error == ""
    assert claims.release(rows, UNTIL, holder=first, last_error="done", next_attempt_at=Now()) == 1
    stored = EventDelivery.objects.get(pk=pk)
    assert (stored.claim_holder, stored.last_error, stored.attempts) == (None, "done", 1)
    assert claims.claim(rows, UNTIL, holder=second, seconds=30) == 1  # released and due: free again


def test_an_expired_claim_is_taken_over_and_its_old_holder_stores_nothing():
    [pk] = make_deliveries(1)
    rows = EventDelivery.objects.filter(pk=pk)
    stale, fresh = claims.new_holder(), claims.new_holder()
    assert claims.claim(rows, UNTIL, holder=stale, seconds=30) == 1
    rows.update(next_attempt_at=Now() - timedelta(seconds=1))  # the database's clock passed the lease
    assert claims.claim(rows, UNTIL, holder=fresh, seconds=30) == 1
    assert not claims.held(rows, UNTIL, holder=stale).exists()
    assert claims.release(rows, UNTIL, holder=stale, status="delivered", next_attempt_at=Now()) == 0
    assert EventDelivery.objects.get(pk=pk).status == "pending"
    assert claims.release(rows, UNTIL, holder=fresh, status="failed", next_attempt_at=Now()) == 1


def test_a_lease_kept_as_its_start_ages_by_the_seconds_given_and_is_cleared_on_release():
    [pk] = make_deliveries(1)
    rows = EventDelivery.objects.filter(pk=pk)
    first, second = claims.new_holder(), claims.new_holder()
    assert claims.claim(rows, STARTED, holder=first, seconds=30) == 1
    assert EventDelivery.objects.get(pk=pk).last_attempt_at is not None
    assert claims.claim(rows, STARTED, holder=second, seconds=30) == 0
    rows.update(last_attempt_at=Now() - timedelta(seconds=31))
    assert claims.claim(rows, STARTED, holder=second, seconds=30) == 1
    assert claims.release(rows, STARTED, holder=second) == 1
    assert EventDelivery.objects.filter(pk=pk, last_attempt_at__isnull=True, claim_holder__isnull=True).exists()


def test_claim_due_takes_up_to_the_limit_and_skips_a_row_another_transaction_locked():
    pks = make_deliveries(4)
    locked, release_lock = threading.Event(), threading.Event()

    def hold_row_lock():
        try:
            with transaction.atomic():
                EventDelivery.objects.select_for_update().get(pk=pks[0])
                locked.set()
                release_lock.wait(timeout=30)
        finally:
            db.close()

    thread = threading.Thread(target=hold_row_lock)
    thread.start()
    try:
        assert locked.wait(timeout=10)
        holder = claims.new_holder()
        rows = EventDelivery.objects.order_by("pk")
        assert claims.claim_due(rows, UNTIL, holder=holder, seconds=30, limit=2) == pks[1:3]
        assert claims.claim_due(rows, UNTIL, holder=claims.new_holder(), seconds=30, limit=5) == pks[3:]
    finally:
        release_lock.set()
        thread.join(timeout=30)
    assert (
        sorted(claims.held(EventDelivery.objects.all(), UNTIL, holder=holder).values_list("pk", flat=True)) == pks[1:3]
    )


SQLITE_SCRIPT = """
import django
django.setup()
from datetime import timedelta
from django.db.models.functions import Now
from brokerproject import claims
from webhooks.models import Event, EventDelivery, EventEndpoint
lease = claims.Lease(field="next_attempt_at", holder_field="claim_holder")
endpoint = EventEndpoint.objects.create(url="https://backend.example/hooks", secret="whsec_x")
for _ in range(3):
    EventDelivery.objects.create(event=Event.objects.create(type="bot.status_changed", data={}), endpoint=endpoint)
rows = EventDelivery.objects.order_by("pk")
stale, fresh = claims.new_holder(), claims.new_holder()
taken = claims.claim_due(rows, lease, holder=stale, seconds=30, limit=2)
again = claims.claim_due(rows, lease, holder=fresh, seconds=30, limit=5)
one = rows.filter(pk=taken[0])
one.update(next_attempt_at=Now() - timedelta(seconds=1))
over = claims.claim(one, lease, holder=fresh, seconds=30)
print(len(taken), len(again), over, claims.release(one, lease, holder=stale, next_attempt_at=Now()),
      claims.release(one, lease, holder=fresh, next_attempt_at=Now()))
"""


def test_claims_work_the_same_on_the_embedded_sqlite(tmp_path):
    env = {**os.environ, **sqlite_env(tmp_path)}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    done = subprocess.run([sys.executable, "-c", SQLITE_SCRIPT], cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert done.stdout.split() == [b"2", b"1", b"1", b"0", b"1"], done.stderr.decode()[-2000:]
