import logging

from celery import shared_task

from brokerproject.celery import enqueue_again, enqueue_each
from brokerproject.retry import backoff
from zoomauth.models import ZoomConnection

from . import credentials, handoff, launch_at_recall, recall, selectors, waiting
from .models import RecallOAuthApp

logger = logging.getLogger(__name__)


def _retry_in(task, exc: recall.RecallRetryableError) -> float:
    return backoff(task.request.retries + 1, base=30.0, cap=900.0, retry_after=exc.retry_after)


@shared_task(bind=True, ignore_result=True, max_retries=6)
def credential_create_customer_managed(self, connection_id: int) -> None:
    connection = ZoomConnection.objects.select_related("app").filter(pk=connection_id).first()
    if connection is None or not connection.is_usable or connection.token_source != ZoomConnection.TokenSource.LOCAL:
        return
    try:
        credentials.credential_create_customer_managed(connection=connection)
    except recall.RecallRetryableError as exc:
        raise self.retry(countdown=_retry_in(self, exc)) from None
    except recall.RecallError as exc:
        logger.warning("recall refused the credential: %s", exc, extra={"connection": connection.public_id})


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=8)
def credential_delete_for_connection(self, connection_id: int) -> None:
    try:
        credentials.credential_delete_for_connection(connection_id=connection_id)
    except recall.RecallRetryableError as exc:
        raise self.retry(countdown=_retry_in(self, exc)) from None


@shared_task(ignore_result=True)
def credentials_sync_statuses() -> int:
    count = 0
    for recall_app in RecallOAuthApp.objects.all():
        try:
            count += credentials.credentials_sync_statuses(recall_app=recall_app)
        except recall.RecallError as exc:
            logger.info("credential status sync failed: %s", exc, extra={"recall_app": recall_app.recall_id})
    return count


@shared_task(ignore_result=True, acks_late=True)
def bot_create_at_recall(bot_id: int) -> None:
    """One try; the next one is a new message after Recall's Retry-After (no worker sleeps on it)."""
    enqueue_again("recallbots.tasks.bot_create_at_recall", bot_id, launch_at_recall.bot_create_at_recall(bot_id=bot_id))


@shared_task(ignore_result=True)
def bots_queued_due() -> int:
    return enqueue_each("recallbots.tasks.bot_create_at_recall", selectors.bots_queued_due())


@shared_task(ignore_result=True, acks_late=True)
def bot_release_waiting(bot_id: int) -> None:
    """The bot's user joined: create it at Recall now."""
    enqueue_again("recallbots.tasks.bot_create_at_recall", bot_id, waiting.bot_release_waiting(bot_id=bot_id))


@shared_task(ignore_result=True, acks_late=True)
def bot_wait_expire(bot_id: int) -> None:
    # Early (a redelivery): once more at the deadline.
    enqueue_again("recallbots.tasks.bot_wait_expire", bot_id, waiting.bot_wait_expire(bot_id=bot_id))


@shared_task(ignore_result=True)
def bots_waiting_expired() -> int:
    return waiting.bots_waited_out()


@shared_task(ignore_result=True, acks_late=True)
def bot_hand_off(bot_id: int) -> None:
    """Its OBF user left: send the successor, if one is due (claimed: redeliveries do no harm)."""
    handoff.bot_hand_off(bot_id=bot_id)


@shared_task(ignore_result=True)
def bots_hand_off_due() -> int:
    return enqueue_each("recallbots.tasks.bot_hand_off", handoff.bots_hand_off_due())
