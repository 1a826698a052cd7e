"""The token callbacks' connection rows, held by each web process for a moment.

A stored-token callback's largest cost of its own was its one row read (a pool checkout, the
query, the converters: a fifth of its CPU). A row read here is kept for CALLBACK_ROW_CACHE_SECONDS
(2 s) and served again only while nothing can have changed it unseen:

- PostgreSQL tells: triggers on zoomauth_zoomconnection and zoomauth_callbackgrant (migration
  0010) NOTIFY the connection's id on every UPDATE or DELETE, whoever makes it (a refresh in a
  worker, a revoke in another replica, the admin, a queryset update()). Each process listens on
  a connection of its own, in a thread, and drops that connection's rows as the notice arrives.
- A row is served only while that listener has proved itself alive within the last
  MAX_SILENCE seconds: it notifies itself every POLL seconds, and notices arrive in commit
  order, so hearing its own means it has taken every change committed before it (see _follow).
  A listener that dies, stalls or cannot hear itself stops the cache within that time; every row
  is dropped when it comes back, since notices sent meanwhile are lost.
- A row read while any notice arrived is not kept: the read may predate the change the notice
  was about.
So a change is seen by every process as soon as its notice is delivered, the same moment a
request that read the row just before the commit would still answer with the old one.
Without PostgreSQL (the embedded SQLite default) or with CALLBACK_ROW_CACHE_SECONDS=0 every
callback reads its row.

Rows are kept as the values read (the access token decrypted, as in any model instance of this
process), never as shared model instances: each hit builds its own.
"""

import logging
import os
import threading
import time

from django.conf import settings
from django.db import connection as db

logger = logging.getLogger(__name__)

CHANNEL = "broker_callback_rows"
MAX_SILENCE = 1.5  # seconds since the listener last proved itself alive
POLL = 0.5  # how long the listener waits for notices before proving itself alive again
MAX_ROWS = 20_000


class RowCache:
    def __init__(self):
        self.lock = threading.Lock()
        self.rows: dict[str, tuple[float, int, tuple]] = {}  # key -> (expires, connection id, values)
        self.keys_of: dict[int, set[str]] = {}  # connection id -> its keys
        self.notices = 0  # notices seen (and listener restarts): a read overlapping one is not kept
        self.alive_at = float("-inf")  # when the listener last proved itself alive (monotonic)
        self.thread: threading.Thread | None = None
        self.pid: int | None = None
        self.stopping = threading.Event()

    # --- the callbacks' side ------------------------------------------------------------------
    def usable(self) -> bool:
        if settings.CALLBACK_ROW_CACHE_SECONDS <= 0 or db.vendor != "postgresql":
            return False
        self._ensure_listener()
        return time.monotonic() - self.alive_at < MAX_SILENCE

    def get(self, key: str) -> tuple[int, tuple] | None:
        found = self.rows.get(key)
        if found is None or found[0] <= time.monotonic() or not self.usable():
            return None
        return found[1], found[2]

    def mark(self) -> int:
        """Taken before a read: put() keeps the row only if no notice arrived since."""
        return self.notices

    def put(self, key: str, connection_id: int, values: tuple, mark: int) -> None:
        with self.lock:
            if self.notices != mark or time.monotonic() - self.alive_at >= MAX_SILENCE:
                return
            if len(self.rows) >= MAX_ROWS:
                self._forget_all()
            self.rows[key] = (time.monotonic() + settings.CALLBACK_ROW_CACHE_SECONDS, connection_id, values)
            self.keys_of.setdefault(connection_id, set()).add(key)

    # --- the listener's side ------------------------------------------------------------------
    def changed(self, connection_id: int) -> None:
        with self.lock:
            self.notices += 1
            for key in self.keys_of.pop(connection_id, ()):
                self.rows.pop(key, None)

    def _forget_all(self) -> None:
        self.notices += 1
        self.rows.clear()
        self.keys_of.clear()

    def forget_all(self) -> None:
        with self.lock:
            self._forget_all()

    def stop(self, timeout: float = 5.0) -> None:
        """End the listener (its database connection closes) and forget every row: at the end of a
        test session, before its database is dropped."""
        self.stopping.set()
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
        with self.lock:
            self.thread = None
            self.alive_at = float("-inf")
            self._forget_all()
        self.stopping.clear()

    def _ensure_listener(self) -> None:
        if self.pid == os.getpid() and self.thread is not None and self.thread.is_alive():
            return
        with self.lock:
            if self.pid == os.getpid() and self.thread is not None and self.thread.is_alive():
                return
            if self.pid != os.getpid():  # a forked child starts with nothing of its parent's
                self._forget_all()
                self.alive_at = float("-inf")
            self.pid = os.getpid()
            self.thread = threading.Thread(
                target=self._listen, args=(dict(db.get_connection_params()),), name="callback-rows", daemon=True
            )
            self.thread.start()

    def _listen(self, params: dict) -> None:
        import psycopg

        params.pop("cursor_factory", None)
        params.update(
            autocommit=True,
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
            tcp_user_timeout=3000,
            application_name="broker-callback-rows",
        )
        pause = 0.5
        while self.pid == os.getpid() and not self.stopping.is_set():
            try:
                with psycopg.connect(**params) as listener:
                    listener.execute(f"LISTEN {CHANNEL}")
                    self.forget_all()  # notices sent before LISTEN are lost to this process
                    pause = 0.5
                    self._follow(listener)
            except Exception as exc:  # noqa: BLE001 - any failure (or a stall): stop serving rows, try again
                self.alive_at = float("-inf")
                self.forget_all()
                logger.warning("callback row cache listener stopped; reading every row", extra={"error": str(exc)})
                self.stopping.wait(pause)
                pause = min(pause * 2, 10.0)
        self.alive_at = float("-inf")

    def _follow(self, listener) -> None:
        """Drop rows as their notices come, and prove the listener alive by a notice of its own.

        Every POLL seconds the listener notifies itself (payload "0"; connection ids start at 1).
        PostgreSQL delivers notices in the order their transactions committed, so once its own
        comes back, every change committed before it was sent has been taken: the cache may serve
        rows until MAX_SILENCE after that moment. A session that cannot hear itself (a pooler in
        transaction mode, a stalled connection) never proves itself alive and serves nothing.
        The notices generator is never left early: a batch it is yielding would be lost.
        """
        own = listener.info.backend_pid
        probe_sent_at: float | None = None
        while self.pid == os.getpid() and not self.stopping.is_set():
            if probe_sent_at is None:
                probe_sent_at = time.monotonic()
                listener.execute("SELECT pg_notify(%s, '0')", (CHANNEL,))
            for notice in listener.notifies(timeout=POLL):
                if notice.payload != "0":
                    self.changed(int(notice.payload))
                elif notice.pid == own and probe_sent_at is not None:
                    self.alive_at, probe_sent_at = probe_sent_at, None
            if probe_sent_at is not None and time.monotonic() - probe_sent_at > MAX_SILENCE:
                raise TimeoutError("the listener did not hear its own notice")


rows = RowCache()
