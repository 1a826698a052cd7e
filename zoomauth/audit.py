"""The token-callback audit, written in batches after the answers have gone out.

One INSERT per callback was a tenth of the callback path's CPU under load. Each web process's
writer thread (brokerproject.batching) writes what accumulated every CALLBACK_AUDIT_FLUSH_SECONDS
(default 0.1 s) at once: one COPY on PostgreSQL, a multi-row INSERT elsewhere.
CALLBACK_AUDIT_FLUSH_SECONDS=0 writes each row at once, in the request's thread. A process killed
outright loses at most that interval of audit rows (never a token: there are none in them). At most
CALLBACK_AUDIT_MAX_QUEUED rows wait; beyond that rows are dropped and counted in /metrics
(broker_callback_audit_dropped_total).
"""

import logging
import threading
import time
from collections import Counter

from django.conf import settings
from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from brokerproject import metrics
from brokerproject.batching import Batcher
from brokerproject.retry import RetryPolicy

from .models import CallbackHourStat, CallbackLog

logger = logging.getLogger(__name__)


def audit_write(rows: list[CallbackLog]) -> None:
    """The rows, and their counts per hour, kind and latency bucket (what the admin overview
    reads), in one transaction."""
    table = CallbackHourStat._meta.db_table
    upsert = (
        f"INSERT INTO {table} (hour, kind, latency_bucket, answered, answered_200) VALUES (%s, %s, %s, %s, %s) "  # noqa: S608
        f"ON CONFLICT (hour, kind, latency_bucket) DO UPDATE SET answered = {table}.answered + excluded.answered, "
        f"answered_200 = {table}.answered_200 + excluded.answered_200"
    )
    hour_field = CallbackHourStat._meta.get_field("hour")
    with transaction.atomic():
        _insert(rows)
        answered: Counter = Counter()
        answered_200: Counter = Counter()
        for row in rows:
            key = (
                row.created_at.replace(minute=0, second=0, microsecond=0),
                row.kind,
                CallbackHourStat.bucket_of(row.latency_ms),
            )
            answered[key] += 1
            answered_200[key] += row.status_code == 200
        values = [
            (hour_field.get_db_prep_value(hour, db), kind, bucket, n, answered_200[(hour, kind, bucket)])
            for (hour, kind, bucket), n in answered.items()
        ]
        with db.cursor() as cursor:
            cursor.executemany(upsert, values)


# Every column but the id, in the model's order; the rows' attribute values go to COPY as they are
# (ids, short strings, numbers, a bool, an address already checked by client_ip, a datetime).
_COPIED = [field for field in CallbackLog._meta.concrete_fields if not field.primary_key]


def _insert(rows: list[CallbackLog]) -> None:
    """The rows, with `created_at` now (as bulk_create's auto_now_add sets it). On PostgreSQL one
    COPY: compiling a multi-row INSERT, with each value prepared by its field (an ip_address() parse
    per row among them), was a quarter of a web worker's CPU in a profile of fresh-connection
    callbacks (bench/profile.py)."""
    if db.vendor != "postgresql":
        CallbackLog.objects.bulk_create(rows)
        return
    now = timezone.now()
    columns = ", ".join(db.ops.quote_name(field.column) for field in _COPIED)
    with db.cursor() as cursor, cursor.copy(f"COPY {CallbackLog._meta.db_table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            row.created_at = now
            copy.write_row([getattr(row, field.attname) for field in _COPIED])


# A batch is written on a fresh connection once more after a failure; the pause (0.25-0.5 s)
# follows the last failure too, so that a database that is down is not met again at once.
AUDIT_RETRY = RetryPolicy(base=0.5, cap=0.5, attempts=2)


def _write(rows: list[CallbackLog]) -> None:
    try:
        for attempt in range(1, (AUDIT_RETRY.attempts or 1) + 1):
            try:
                audit_write(rows)
                return
            except Exception:
                logger.exception("callback audit write failed", extra={"rows": len(rows), "attempt": attempt})
                db.close()
                time.sleep(AUDIT_RETRY.wait(attempt))
    finally:
        if threading.current_thread() is writer.thread:
            db.close()  # at most one connect per batch, and no connection held by an idle thread


writer = Batcher(
    "callback-audit",
    _write,
    interval=lambda: settings.CALLBACK_AUDIT_FLUSH_SECONDS,
    # A flood (a locked-out guesser gets a cheap 429 each) must not grow the queue without end
    # while the database is slow: past this many rows waiting, rows are dropped and counted.
    max_queued=lambda: settings.CALLBACK_AUDIT_MAX_QUEUED,
    on_drop=metrics.CALLBACK_AUDIT_DROPPED.inc,
)


def audit_record(**fields) -> None:
    writer.add(CallbackLog(**fields))
