"""Work a request hands off to be done a moment later, in bulk, by a thread of its own process.

Used where one unit of work per request was a large share of a hot path's CPU: the token
callbacks' audit rows (one INSERT for many) and the webhook intake's queue messages (one Celery
message for many events). A Batcher starts its thread on first use (so each gunicorn worker,
forked after import, has its own), collects items for `interval()` seconds, and hands them to
`handle` in one call. At normal exit what is queued is handled. A process killed outright loses
at most one interval of items: callers only batch what can be recovered or spared (the
intake's rows are already stored and the beat sweeper re-enqueues them; audit rows are a log).
"""

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Batcher:
    """`max_queued` bounds what may wait (None: no bound); an item beyond it is dropped and
    `on_drop` is called (to count it), so a flood cannot grow a process's memory without end."""

    def __init__(
        self,
        name: str,
        handle: Callable[[list], None],
        *,
        interval: Callable[[], float],
        max_items=500,
        max_queued: Callable[[], int] | None = None,
        on_drop: Callable[[], None] | None = None,
    ):
        self.name = name
        self.handle = handle
        self.interval = interval
        self.max_items = max_items
        self.max_queued = max_queued
        self.on_drop = on_drop
        self.items: queue.SimpleQueue = queue.SimpleQueue()
        self.arrived = threading.Event()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.batches = 0
        atexit.register(self.flush)

    def add(self, item) -> None:
        """Queue `item`; with an interval of 0 it is handled at once, in the caller's thread."""
        if self.interval() <= 0:
            self._handle([item])
            return
        if self.max_queued is not None and self.items.qsize() >= self.max_queued():
            if self.on_drop is not None:
                self.on_drop()
            return
        self.items.put(item)
        self.arrived.set()
        if self.thread is None or not self.thread.is_alive():
            with self.lock:
                if self.thread is None or not self.thread.is_alive():
                    self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self.thread.start()

    def flush(self) -> None:
        """Handle what is queued now, in this thread (at exit, and for tests)."""
        while batch := self._drain():
            self._handle(batch)

    def _run(self) -> None:
        # Items stay in the queue until handled, so flush() can always reach every one of them.
        while True:
            self.arrived.wait()
            self.arrived.clear()
            time.sleep(self.interval())
            while batch := self._drain():
                self._handle(batch)

    def _drain(self) -> list:
        batch: list = []
        while len(batch) < self.max_items:
            try:
                batch.append(self.items.get_nowait())
            except queue.Empty:
                break
        return batch

    def _handle(self, batch: list) -> None:
        try:
            self.handle(batch)
            self.batches += 1
        except Exception:
            logger.exception("batch failed", extra={"batcher": self.name, "items": len(batch)})
