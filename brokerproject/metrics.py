"""Prometheus metrics (prometheus-client), correct across gunicorn's worker processes.

Counters and histograms are process-wide objects; with PROMETHEUS_MULTIPROC_DIR set (the
gunicorn config and the Celery entrypoints set it), each process writes them to files there and
a scrape sums every process's files. Without it (tests, `make run`) they live in this process.
Gauges that are facts about the database (connections by status, webhook backlog) are read at
scrape time by the /metrics view rather than kept in memory.
"""

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

CALLBACKS = Counter("broker_token_callbacks_total", "Token callbacks answered.", ["kind", "status"])
CALLBACK_SECONDS = Histogram(
    "broker_token_callback_seconds",
    "Time to answer a token callback.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0),
)
CALLBACK_AUDIT_DROPPED = Counter(
    "broker_callback_audit_dropped_total", "Token-callback audit rows dropped: the audit queue was full."
)
ZOOM_CALLS = Counter("broker_zoom_calls_total", "Calls to Zoom.", ["endpoint", "outcome"])
REFRESHES = Counter("broker_token_refreshes_total", "Access-token refreshes at Zoom.", ["outcome"])


def exposition(extra_collectors=()) -> bytes:
    """The text format of every process's metrics, plus collectors that read the database."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    extra = CollectorRegistry()
    for collector in extra_collectors:
        extra.register(collector)
    return generate_latest(processes) + generate_latest(extra)
