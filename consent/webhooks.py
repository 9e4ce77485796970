"""Signed webhooks for consent changes: payload, signature and the enqueueing of deliveries.

Signature header: ``Mamoru-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
Receivers recompute it over the raw body and reject old timestamps (replay).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

from django.db import transaction
from django.utils import timezone

from consent.models import ConsentEvent, WebhookDelivery, WebhookEndpoint
from governance.subjects.models import Workspace

logger = logging.getLogger(__name__)


def webhook_signature(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def webhook_body(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _event_payload(event: ConsentEvent, codes: dict[int, str]) -> dict:
    return {
        "record_id": str(event.id), "profile_id": str(event.profile_id), "purpose": codes.get(event.purpose_id),
        "purpose_version": event.purpose_version, "state": event.state, "method": event.method,
        "occurred_at": event.occurred_at.isoformat(), "site": event.site.slug if event.site else None,
    }


def _wanted_codes(endpoint: WebhookEndpoint) -> set[str] | None:
    """The endpoint's purpose filter (empty: all); ``None`` when it is malformed (saved before the
    admin validated it): that endpoint is skipped and logged, and recording events goes on."""
    codes = endpoint.purpose_codes or []
    if isinstance(codes, str):
        codes = [codes]
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        logger.error("webhook endpoint %s has a malformed purpose filter %r; fix it in the admin", endpoint.pk, codes)
        return None
    return set(codes)


def webhooks_enqueue(*, workspace: Workspace, events: list[ConsentEvent]) -> list[WebhookDelivery]:
    """Create one delivery per active endpoint (inside the caller's transaction); send on commit."""
    endpoints = list(WebhookEndpoint.objects.filter(workspace=workspace, active=True))
    if not endpoints or not events:
        return []
    from consent.models import Purpose

    codes = dict(Purpose.objects.filter(id__in={e.purpose_id for e in events}).values_list("id", "code"))
    deliveries = []
    for endpoint in endpoints:
        wanted = _wanted_codes(endpoint)
        if wanted is None:
            continue
        chosen = [e for e in events if not wanted or codes.get(e.purpose_id) in wanted]
        if not chosen:
            continue
        deliveries.append(WebhookDelivery(
            endpoint=endpoint, next_attempt_at=timezone.now(),
            payload={"type": "consent.changed", "workspace": workspace.slug,
                     "events": [_event_payload(e, codes) for e in chosen]},
        ))
    WebhookDelivery.objects.bulk_create(deliveries)

    def send() -> None:
        from consent.tasks import webhook_deliver

        for delivery in deliveries:
            webhook_deliver.delay(delivery.pk)

    transaction.on_commit(send)
    return deliveries
