"""Celery tasks: webhook delivery (claimed once, exponential backoff with jitter) and the sweep.

Several task runs can hold the same delivery id: the retry message, the sweep's message for an
overdue delivery, a message redelivered after a worker died. Only the run that *claims* the
delivery sends it: an atomic ``UPDATE … WHERE status = 'pending' AND next_attempt_at <= now AND
(claimed_until IS NULL OR claimed_until < now)`` sets ``claimed_until`` (a lease); every other run
updates no row and stops. The claim is released when the attempt is recorded. A run that dies
mid-attempt leaves the lease to expire, after which the sweep sends again (at-least-once:
receivers de-duplicate on the ``Mamoru-Delivery`` header).
"""

from __future__ import annotations

import random
from datetime import timedelta

import httpx
from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from consent.models import DeliveryStatus, WebhookDelivery
from consent.webhooks import webhook_body, webhook_signature
from governance.outbound import (
    OutboundPolicy,
    OutboundRefused,
    OutboundTooLarge,
    outbound_client,
    outbound_request,
    retry_after_seconds,
)

TIMEOUT_SECONDS = 10  # connect/read, per socket operation
TOTAL_SECONDS = 30.0  # one attempt, redirects included
MAX_RESPONSE_BYTES = 1024 * 1024  # a receiver's answer is only looked at for its status
# A claim outlives the longest attempt (the HTTP timeout) with room to record the outcome.
CLAIM_SECONDS = 60
# The sweep leaves a delivery alone this long after it fell due (its retry message comes first).
SWEEP_GRACE_SECONDS = 120
SWEEP_BATCH = 500


def max_attempts() -> int:
    return int(getattr(settings, "MAMORU_WEBHOOK_MAX_ATTEMPTS", 8))


def backoff_seconds(attempt: int) -> int:
    """The base delay after ``attempt`` failed attempts: 30 s, 1 min, 2 min, … capped at 1 hour."""
    base = int(getattr(settings, "MAMORU_WEBHOOK_BACKOFF_SECONDS", 30))
    return min(base * 2 ** max(attempt - 1, 0), 3600)


def backoff_with_jitter(attempt: int) -> float:
    """The delay before the next attempt: the base delay ±20 %, so that deliveries that failed
    together (a receiver was down) do not all come back in the same second."""
    return backoff_seconds(attempt) * random.uniform(0.8, 1.2)


def delivery_claim(*, delivery_id: int) -> WebhookDelivery | None:
    """Take the delivery for one attempt, or ``None`` when it is not due, done, or held by another run."""
    now = timezone.now()
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
    )
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)


def _attempt(delivery: WebhookDelivery) -> bool | None:
    """POST the delivery: ``True`` delivered, ``False`` to be retried, ``None`` refused for good (an
    internal address the endpoint does not allow, a redirect to another origin). Sent through
    governance.outbound: address guard, no proxies from the environment, size and time limits."""
    endpoint = delivery.endpoint
    body = webhook_body({**delivery.payload, "delivery_id": delivery.pk})
    policy = OutboundPolicy.from_settings(
        allow_internal_hosts=endpoint.allow_internal_hosts, read_timeout=TIMEOUT_SECONDS,
        total_timeout=min(float(settings.MAMORU_OUTBOUND_TOTAL_TIMEOUT), TOTAL_SECONDS),
        max_response_bytes=MAX_RESPONSE_BYTES,
    )
    delivery.retry_after = None
    client = outbound_client(policy=policy)
    try:
        response = outbound_request(
            client, "POST", endpoint.url, policy=policy, content=body,
            headers={"Content-Type": "application/json", "Mamoru-Delivery": str(delivery.pk)},
            credentials={"Mamoru-Signature": webhook_signature(secret=endpoint.secret or "", body=body)},
        )
    except OutboundRefused as exc:
        delivery.last_status_code = None
        delivery.last_error = f"refused: {exc}"[:500]
        return None
    except (httpx.HTTPError, OutboundTooLarge) as exc:
        delivery.last_status_code = None
        delivery.last_error = f"{type(exc).__name__}: {exc}"[:500]
        return False
    finally:
        client.close()
    delivery.last_status_code = response.status_code
    ok = 200 <= response.status_code < 300
    delivery.last_error = "" if ok else f"HTTP {response.status_code}"
    if response.status_code in {429, 503}:
        delivery.retry_after = retry_after_seconds(response.headers)
    return ok


@shared_task(bind=True, acks_late=True, max_retries=None)
def webhook_deliver(self, delivery_id: int) -> str:
    """POST one delivery if this run claims it; on failure schedule the next attempt (backoff with
    jitter) until ``MAMORU_WEBHOOK_MAX_ATTEMPTS``, then mark it failed (admin: webhook deliveries)."""
    delivery = delivery_claim(delivery_id=delivery_id)
    if delivery is None:
        return "skipped"
    delivery.attempts += 1
    ok = _attempt(delivery)
    delay = None
    if ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = timezone.now()
        delivery.next_attempt_at = None
    elif ok is None or delivery.attempts >= max_attempts():
        delivery.status = DeliveryStatus.FAILED  # refused (ok is None): a retry would be refused too
        delivery.next_attempt_at = None
    else:
        delay = max(backoff_with_jitter(delivery.attempts), min(delivery.retry_after or 0, 3600))
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    delivery.claimed_until = None
    delivery.save(update_fields=["attempts", "status", "delivered_at", "next_attempt_at", "claimed_until",
                                 "last_status_code", "last_error"])
    if delay is not None:
        raise self.retry(countdown=delay)
    return delivery.status


@shared_task
def webhook_sweep() -> int:
    """Send again pending deliveries that are overdue and unclaimed (their message was lost, or the
    worker that held them died). Sending twice is prevented by the claim, not by the sweep."""
    now = timezone.now()
    overdue = list(
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lt=now - timedelta(seconds=SWEEP_GRACE_SECONDS)
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for pk in overdue:
        webhook_deliver.delay(pk)
    return len(overdue)
