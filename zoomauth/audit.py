"""The token-callback audit, written in batches after the answers have gone out.

One INSERT per callback was a tenth of the callback path's CPU under load. Each web process's
writer thread (brokerproject.batching) writes what accumulated every CALLBACK_AUDIT_FLUSH_SECONDS
(default 0.1 s) as one multi-row INSERT. CALLBACK_AUDIT_FLUSH_SECONDS=0 writes each row at once,
in the request's thread. A process killed outright loses at most that interval of audit rows
(never a token: there are none in them).
"""

import logging
import threading
import time

from django.conf import settings
from django.db import connection as db

from brokerproject.batching import Batcher

from .models import CallbackLog

logger = logging.getLogger(__name__)


def _write(rows: list[CallbackLog]) -> None:
    try:
        for attempt in (1, 2):
            try:
                CallbackLog.objects.bulk_create(rows)
                return
            except Exception:
                logger.exception("callback audit write failed", extra={"rows": len(rows), "attempt": attempt})
                db.close()
                time.sleep(0.5)
    finally:
        if threading.current_thread() is writer.thread:
            db.close()  # at most one connect per batch, and no connection held by an idle thread


writer = Batcher("callback-audit", _write, interval=lambda: settings.CALLBACK_AUDIT_FLUSH_SECONDS)


def audit_record(**fields) -> None:
    writer.add(CallbackLog(**fields))
