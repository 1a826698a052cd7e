import logging

from celery import shared_task

from .services import deliveries_sweep, delivery_attempt, event_handle_locally

logger = logging.getLogger(__name__)


def enqueue_safely(task, *args, countdown: float | None = None) -> bool:
    """Enqueue without hanging or raising when the broker is away; the sweeper catches up."""
    try:
        task.apply_async(args=args, countdown=countdown, retry=False)
        return True
    except Exception as exc:  # noqa: BLE001 - kombu raises several kinds
        logger.warning("could not enqueue %s: %s", task.name, type(exc).__name__)
        return False


@shared_task(ignore_result=True, acks_late=True)
def forward_delivery(delivery_id: int) -> None:
    delay = delivery_attempt(delivery_id=delivery_id)
    if delay is not None:
        enqueue_safely(forward_delivery, delivery_id, countdown=delay)


@shared_task(ignore_result=True, acks_late=True)
def handle_zoom_event(delivery_id: int) -> None:
    event_handle_locally(delivery_id=delivery_id)


@shared_task(ignore_result=True)
def sweep_pending_deliveries() -> int:
    due, unhandled = deliveries_sweep()
    for delivery_id in due:
        enqueue_safely(forward_delivery, delivery_id)
    for delivery_id in unhandled:
        enqueue_safely(handle_zoom_event, delivery_id)
    return len(due) + len(unhandled)
