import logging

from celery import shared_task

from brokerproject.celery import enqueue_again, enqueue_each, enqueue_safely

from . import events, services

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True, acks_late=True)
def delivery_attempt(delivery_id: int) -> None:
    enqueue_again("webhooks.tasks.delivery_attempt", delivery_id, services.delivery_attempt(delivery_id=delivery_id))


@shared_task(ignore_result=True, acks_late=True)
def deliveries_received(events: list) -> None:
    """New Zoom events, each the ids of its rows (one per target): forward each, then act on it
    locally. One message carries every event a web process took in during a short interval."""
    for delivery_ids in events:
        services.event_handle_locally(delivery_id=delivery_ids[0], before_forward=True)
        for delivery_id in delivery_ids:
            delivery_attempt.run(delivery_id)
        services.event_handle_locally(delivery_id=delivery_ids[0])


@shared_task(ignore_result=True, acks_late=True)
def event_handle_locally(delivery_id: int) -> None:
    services.event_handle_locally(delivery_id=delivery_id)


@shared_task(ignore_result=True)
def deliveries_sweep() -> int:
    due, unhandled = services.deliveries_sweep()
    return enqueue_each("webhooks.tasks.delivery_attempt", due) + enqueue_each(
        "webhooks.tasks.event_handle_locally", unhandled
    )


@shared_task(ignore_result=True)
def deliveries_prune() -> int:
    return services.deliveries_prune()


@shared_task(ignore_result=True, acks_late=True)
def event_delivery_attempt(delivery_id: int) -> None:
    delay, following = events.event_delivery_attempt(delivery_id=delivery_id)
    enqueue_again("webhooks.tasks.event_delivery_attempt", delivery_id, delay)
    if following is not None:
        enqueue_safely("webhooks.tasks.event_delivery_attempt", following)


@shared_task(ignore_result=True)
def event_deliveries_due() -> int:
    return enqueue_each("webhooks.tasks.event_delivery_attempt", events.event_deliveries_due())
