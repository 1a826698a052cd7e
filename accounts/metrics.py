"""GET /metrics: Prometheus text format behind `Authorization: Bearer <METRICS_TOKEN>`.

Counters (callbacks by kind and status with a latency histogram, Zoom calls by endpoint and
outcome, refreshes by outcome) are summed over every gunicorn worker of this web container
(brokerproject.metrics). Facts that live in the database are read at scrape time, so they are
right whichever process or container did the work: connections by status, the Zoom-event
forwarding backlog and its lag, and event deliveries to the customer's backend by status.
"""

import hmac

from django.conf import settings
from django.db.models import Count, Min
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily

from brokerproject import metrics
from webhooks.models import EventDelivery, ZoomWebhookDelivery
from zoomauth.models import ZoomConnection


class DatabaseCollector:
    def collect(self):
        connections = GaugeMetricFamily("broker_connections", "Zoom connections by status.", labels=["status"])
        counts = dict(ZoomConnection.objects.values_list("status").annotate(n=Count("pk")))
        for status in ZoomConnection.Status.values:
            connections.add_metric([status], counts.get(status, 0))
        yield connections

        pending = ZoomWebhookDelivery.objects.filter(status=ZoomWebhookDelivery.Status.PENDING).aggregate(
            n=Count("pk"), oldest=Min("received_at")
        )
        yield GaugeMetricFamily(
            "broker_webhook_forward_backlog", "Zoom events waiting to be forwarded to Recall.", value=pending["n"]
        )
        lag = (timezone.now() - pending["oldest"]).total_seconds() if pending["oldest"] else 0.0
        yield GaugeMetricFamily(
            "broker_webhook_forward_lag_seconds", "Age of the oldest Zoom event not yet forwarded.", value=lag
        )

        deliveries = GaugeMetricFamily(
            "broker_event_deliveries", "Events to the customer's backend by delivery status.", labels=["status"]
        )
        counts = dict(EventDelivery.objects.values_list("status").annotate(n=Count("pk")))
        for status in EventDelivery.Status.values:
            deliveries.add_metric([status], counts.get(status, 0))
        yield deliveries


@never_cache
@require_GET
def metrics_view(request):
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off: set METRICS_TOKEN.")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        response = HttpResponse("A valid 'Authorization: Bearer <METRICS_TOKEN>' is required.", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.exposition([DatabaseCollector()]), content_type=CONTENT_TYPE_LATEST)
