"""A forward attempt's outcome is the delivery's own transition (ZoomWebhookDelivery.record_attempt):
delivered on 2xx, another try on 408/425/429/5xx/no answer until the forwarding period is over,
failed on any other answer; and nothing in webhooks outside the model writes those fields."""

import ast
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from webhooks.models import ZoomWebhookDelivery

ROOT = Path(__file__).resolve().parents[2]


def fresh(**fields) -> ZoomWebhookDelivery:
    return ZoomWebhookDelivery(received_at=timezone.now(), attempts=0, **fields)


def test_a_2xx_answer_delivers():
    delivery = fresh(last_error="HTTP 503")
    assert delivery.record_attempt(status_code=204, error="", retry_after=None) is None
    assert delivery.status == ZoomWebhookDelivery.Status.DELIVERED
    assert delivery.delivered_at is not None and delivery.last_error == "" and delivery.attempts == 1


@pytest.mark.parametrize("status_code, error", [(503, ""), (429, ""), (408, ""), (425, ""), (None, "ReadTimeout")])
def test_a_retryable_answer_schedules_another_try(status_code, error):
    delivery = fresh()
    delay = delivery.record_attempt(status_code=status_code, error=error, retry_after=None)
    assert delay is not None and delay >= 0
    assert delivery.status == ZoomWebhookDelivery.Status.PENDING
    assert delivery.last_error == (error or f"HTTP {status_code}")
    assert delivery.next_attempt_at > timezone.now() - timedelta(seconds=1)


def test_retry_after_is_honoured():
    delivery = fresh()
    delay = delivery.record_attempt(status_code=429, error="", retry_after=600)
    assert 590 <= delay <= 601


def test_after_the_forwarding_period_it_gives_up():
    delivery = fresh()
    delivery.received_at = timezone.now() - settings.WEBHOOK_FORWARD_PERIOD - timedelta(seconds=1)
    assert delivery.record_attempt(status_code=503, error="", retry_after=None) is None
    assert delivery.status == ZoomWebhookDelivery.Status.FAILED
    assert delivery.last_error.startswith("gave up after 1 attempts: HTTP 503")


def test_a_refusal_fails_at_once():
    delivery = fresh()
    assert delivery.record_attempt(status_code=404, error="", retry_after=None) is None
    assert delivery.status == ZoomWebhookDelivery.Status.FAILED
    assert delivery.last_error == "HTTP 404: refused by the target"


def test_nothing_else_in_webhooks_writes_an_attempts_outcome():
    fields = set(ZoomWebhookDelivery.ATTEMPT_FIELDS)
    writes = []
    for path in sorted((ROOT / "webhooks").glob("*.py")):
        if path.name == "models.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr in fields:
                    writes.append(f"{path.name}:{node.lineno} {ast.unparse(target)}")
    assert writes == []
