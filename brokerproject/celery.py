import logging
import os
from collections.abc import Sequence

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerproject.settings")

logger = logging.getLogger(__name__)

app = Celery("brokerproject")
# Everything, the beat schedule included, comes from the CELERY_* settings.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def enqueue_safely(name: str, *args, countdown: float | None = None) -> bool:
    """Enqueue a task by its dotted name ("app.tasks.function") without hanging or raising when
    the broker is away: callers keep what must be done in the database, and the beat sweepers
    catch up. Always by name, so services enqueue their app's tasks without importing tasks.py
    (which imports them); tests/test_architecture.py holds every name to a registered task."""
    try:
        app.send_task(name, args=args, countdown=countdown, retry=False)
        return True
    except Exception as exc:  # noqa: BLE001 - kombu raises several kinds
        logger.warning("could not enqueue %s: %s", name, type(exc).__name__)
        return False


def enqueue_each(name: str, ids: Sequence[int]) -> int:
    """A sweep's finds, one message each (by name, as enqueue_safely); returns how many were found:
    one the broker did not take is found again by the next sweep."""
    for pk in ids:
        enqueue_safely(name, pk)
    return len(ids)


def enqueue_again(name: str, pk: int, delay: float | None) -> None:
    """A task whose one try asked for another in `delay` seconds (None: done): a new message with a
    countdown, so no worker sleeps on it."""
    if delay is not None:
        enqueue_safely(name, pk, countdown=delay)


def enqueue_many(name: str, args_list: list[tuple]) -> int:
    """Enqueue one message per args over one broker connection; returns how many went out (the
    rest are the caller's to keep for a later try, as with enqueue_safely)."""
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for args in args_list:
                app.send_task(name, args=args, producer=producer, retry=False)
                sent += 1
    except Exception as exc:  # noqa: BLE001 - kombu raises several kinds
        logger.warning("could not enqueue %s: %s", name, type(exc).__name__)
    return sent
