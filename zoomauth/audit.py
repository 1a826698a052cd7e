"""The token-callback audit, written in batches after the answers have gone out.

One INSERT per callback was a tenth of the callback path's CPU under load. Each web process keeps
a queue that a background thread drains every CALLBACK_AUDIT_FLUSH_SECONDS (default 0.1 s) into
one multi-row INSERT. Rows still queued when a process exits normally are written at exit; a
process killed outright loses at most that interval of audit rows (never a token: there are
none in them). CALLBACK_AUDIT_FLUSH_SECONDS=0 writes each row at once, in the request's thread.
"""

import atexit
import logging
import queue
import threading
import time

from django.conf import settings
from django.db import connection as db

from .models import CallbackLog

logger = logging.getLogger(__name__)

MAX_BATCH = 500


class AuditWriter:
    def __init__(self):
        self.rows: queue.SimpleQueue[CallbackLog] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.batches_written = 0

    def record(self, **fields) -> None:
        interval = settings.CALLBACK_AUDIT_FLUSH_SECONDS
        if interval <= 0:
            CallbackLog.objects.create(**fields)
            return
        self.rows.put(CallbackLog(**fields))
        if self.thread is None or not self.thread.is_alive():
            self._start()

    def _start(self) -> None:
        # Started on first use, so that each gunicorn worker (forked after import) has its own.
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="callback-audit", daemon=True)
                self.thread.start()

    def _run(self) -> None:
        while True:
            batch = [self.rows.get()]
            time.sleep(settings.CALLBACK_AUDIT_FLUSH_SECONDS)
            self._write(batch + self._drain())

    def _drain(self) -> list[CallbackLog]:
        batch = []
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self.rows.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[CallbackLog]) -> None:
        try:
            for attempt in (1, 2):
                try:
                    CallbackLog.objects.bulk_create(batch)
                    self.batches_written += 1
                    return
                except Exception:
                    logger.exception("callback audit write failed", extra={"rows": len(batch), "attempt": attempt})
                    db.close()
                    time.sleep(0.5)
        finally:
            # At most one connect per batch, and no connection held by an idle thread.
            db.close()

    def flush(self) -> None:
        """Write what is queued now, in this thread (at exit, and for tests)."""
        while batch := self._drain():
            self._write(batch)


writer = AuditWriter()
atexit.register(writer.flush)
