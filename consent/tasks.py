"""Celery tasks: webhook delivery with exponential backoff, and a sweep for stuck deliveries."""

from __future__ import annotations

from datetime import timedelta

import httpx
from celery import shared_task
from django.utils import timezone

from consent.models import DeliveryStatus, WebhookDelivery
from consent.webhooks import webhook_body, webhook_signature

MAX_ATTEMPTS = 8
TIMEOUT_SECONDS = 10


def backoff_seconds(attempt: int) -> int:
    """30 s, 1 min, 2 min, … capped at 1 hour."""
    return min(30 * 2 ** max(attempt - 1, 0), 3600)


@shared_task(bind=True, acks_late=True, max_retries=None)
def webhook_deliver(self, delivery_id: int) -> str:
    """POST one delivery; on failure schedule the next attempt until MAX_ATTEMPTS."""
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return "skipped"
    endpoint = delivery.endpoint
    body = webhook_body({**delivery.payload, "delivery_id": delivery.pk})
    delivery.attempts += 1
    try:
        response = httpx.post(
            endpoint.url, content=body, timeout=TIMEOUT_SECONDS,
            headers={
                "Content-Type": "application/json",
                "Mamoru-Signature": webhook_signature(secret=endpoint.secret or "", body=body),
                "Mamoru-Delivery": str(delivery.pk),
            },
        )
        delivery.last_status_code = response.status_code
        ok = 200 <= response.status_code < 300
        delivery.last_error = "" if ok else f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        ok = False
        delivery.last_error = f"{type(exc).__name__}: {exc}"[:500]
    if ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = timezone.now()
        delivery.next_attempt_at = None
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
    else:
        delay = backoff_seconds(delivery.attempts)
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    delivery.save()
    if delivery.status == DeliveryStatus.PENDING:
        raise self.retry(countdown=backoff_seconds(delivery.attempts))
    return delivery.status


@shared_task
def webhook_sweep() -> int:
    """Re-send pending deliveries whose next attempt is overdue (e.g. after a worker died)."""
    overdue = WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lt=timezone.now() - timedelta(minutes=5)
    ).values_list("pk", flat=True)[:500]
    for pk in overdue:
        webhook_deliver.delay(pk)
    return len(overdue)
