import logging

from django.conf import settings
from django.db import transaction
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from brokerproject import jsonbody
from brokerproject.batching import Batcher
from brokerproject.celery import enqueue_safely
from brokerproject.throttling import client_ip
from zoomauth.models import ZoomApp

from . import zoom_signature
from .models import WebhookRejection
from .services import delivery_intake, intake_apps

logger = logging.getLogger(__name__)


def _reject(request, app: ZoomApp, reason: str, status: int = 401) -> HttpResponse:
    WebhookRejection.objects.create(app=app, reason=reason[:200], client_address=client_ip(request))
    logger.info("zoom webhook rejected", extra={"app": app.pk, "reason": reason})
    return HttpResponse(f"Rejected: {reason}.", status=status, content_type="text/plain")


@csrf_exempt
@require_POST
def zoom_webhook(request, app_public_id):
    """Verify on the raw bytes, persist them, answer Zoom at once; forward and handle in tasks."""
    found = intake_apps.get(app_public_id)
    if found is None:
        raise Http404("No Zoom app with this id.")
    app, targets = found
    body = request.body
    timestamp = request.headers.get("x-zm-request-timestamp", "")
    signature = request.headers.get("x-zm-signature", "")
    try:
        zoom_signature.verify(secret=app.webhook_secret, timestamp=timestamp, signature=signature, body=body)
    except zoom_signature.ZoomSignatureError as exc:
        return _reject(request, app, str(exc))
    try:
        # Parsed for routing only; the raw bytes are what is stored and forwarded.
        event = jsonbody.loads(body, text="strip")
    except jsonbody.MalformedJSON as exc:
        return _reject(request, app, str(exc), status=400)
    if not isinstance(event, dict):
        return _reject(request, app, "body is not a JSON object", status=400)
    event_name = str(event.get("event", ""))

    answer = None
    if event_name == "endpoint.url_validation":
        payload = event.get("payload")
        plain_token = str(payload.get("plainToken", "")) if isinstance(payload, dict) else ""
        if not plain_token:
            return _reject(request, app, "url_validation without plainToken", status=400)
        answer = zoom_signature.url_validation_answer(secret=app.webhook_secret, plain_token=plain_token)

    created = delivery_intake(
        app=app,
        body=body,
        timestamp=timestamp,
        signature=signature,
        content_type=request.headers.get("Content-Type", "application/json"),
        event=event_name,
        targets=targets,
    )
    if created:
        # delivery_intake has committed: a worker never looks for a row that is not there yet.
        transaction.on_commit(lambda: _enqueue(created))
    else:
        logger.info("zoom webhook duplicate dropped", extra={"app": app.pk, "zoom_event": event_name})
    if answer is not None:
        return JsonResponse(answer)
    return HttpResponse(status=200)


def _publish(events: list[list[int]]) -> None:
    # If the broker is away, the beat sweeper enqueues the stored rows once it is back.
    enqueue_safely("webhooks.tasks.deliveries_received", events)


# One queue message for every event this process took in during WEBHOOK_ENQUEUE_BATCH_SECONDS:
# the publish was the largest cost of the intake at burst rate. The rows are stored before the
# 200, so a process that dies before publishing loses nothing: the sweeper finds them.
intake_queue = Batcher(
    "webhook-intake", _publish, interval=lambda: settings.WEBHOOK_ENQUEUE_BATCH_SECONDS, max_items=200
)


def _enqueue(delivery_ids: list[int]) -> None:
    intake_queue.add(delivery_ids)
