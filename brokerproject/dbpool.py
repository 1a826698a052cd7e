"""Hand a thread's database connection back to the pool before it waits on something remote.

With PostgreSQL each process shares a small pool (DB_POOL_MAX_SIZE) among many threads. Django
returns a thread's connection only when the connection is closed (at the end of a request); a
thread that then waits seconds on Zoom, or on another thread's refresh, would hold one idle
while every other request queues for it (up to the pool's 5 s timeout: a callback answered late).
"""

from django.db import connection as db


def hand_back_connection() -> None:
    """Return this thread's connection to the pool, unless it is inside a transaction (nothing to
    hand back then) or there is no pool (SQLite, DB_POOL_MAX_SIZE=0: closing would only cost a
    reconnect). The next query takes one from the pool again."""
    if getattr(db, "pool", None) is not None and not db.in_atomic_block:
        db.close()
