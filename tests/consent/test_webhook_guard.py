"""Webhooks go out through governance.outbound: internal addresses are refused unless the endpoint
allows internal hosts, a redirect never carries the delivery to another origin (issue 14, item 5)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from consent.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from governance.crypto import envelope
from tests.loopback_http import Recorder, answer

pytestmark = pytest.mark.django_db


def _delivery(site, url: str, *, allow: bool = False) -> int:
    endpoint = WebhookEndpoint(workspace=site.workspace, name="crm", url=url, allow_internal_hosts=allow,
                               data_key_id=envelope.data_key_create(owner="test"))
    endpoint.secret = "whsec_test"
    endpoint.save()
    return WebhookDelivery.objects.create(endpoint=endpoint, next_attempt_at=timezone.now(),
                                          payload={"type": "consent.changed"}).pk


@pytest.mark.parametrize("url,kind", [
    ("http://169.254.169.254/latest/meta-data/", "link-local"), ("http://10.0.0.1/hook", "private"),
    ("https://[::1]/hook", "loopback"),
])
def test_a_webhook_on_an_internal_address_is_refused_and_fails_at_once(site, settings, url, kind):
    from consent.tasks import webhook_deliver

    settings.MAMORU_OUTBOUND_ALLOW_PRIVATE = False
    pk = _delivery(site, url)
    webhook_deliver.apply(args=[pk])
    delivery = WebhookDelivery.objects.get(pk=pk)
    # refused before connecting; retrying would be refused too, so it fails visibly at once
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
    assert delivery.last_error.startswith("refused: ") and f"a {kind} address" in delivery.last_error


def test_a_loopback_receiver_gets_deliveries_only_when_the_endpoint_allows_it(site, settings):
    from consent.tasks import webhook_deliver

    settings.MAMORU_OUTBOUND_ALLOW_PRIVATE = False
    receiver = Recorder(handler=lambda h: answer(h, 204))
    try:
        refused = _delivery(site, f"http://localhost:{receiver.port}/hook")
        webhook_deliver.apply(args=[refused])
        assert receiver.requests == []
        allowed = _delivery(site, f"http://localhost:{receiver.port}/hook", allow=True)
        webhook_deliver.apply(args=[allowed])
    finally:
        receiver.close()
    assert WebhookDelivery.objects.get(pk=refused).status == DeliveryStatus.FAILED
    assert WebhookDelivery.objects.get(pk=allowed).status == DeliveryStatus.DELIVERED
    assert [(r[0], r[1]) for r in receiver.requests] == [("POST", "/hook")]
    assert receiver.requests[0][2]["Mamoru-Delivery"] == str(allowed)


def test_a_redirect_to_another_origin_does_not_carry_the_delivery(site):
    from consent.tasks import webhook_deliver

    other = Recorder(handler=lambda h: answer(h, 204))
    receiver = Recorder(handler=lambda h: answer(h, 307, None, {"Location": f"http://127.0.0.1:{other.port}/x"}))
    try:
        pk = _delivery(site, f"http://127.0.0.1:{receiver.port}/hook", allow=True)
        webhook_deliver.apply(args=[pk])
    finally:
        receiver.close()
        other.close()
    delivery = WebhookDelivery.objects.get(pk=pk)
    assert len(receiver.requests) == 1 and other.requests == []
    assert delivery.status == DeliveryStatus.FAILED and "another origin" in delivery.last_error


def test_retry_after_from_the_receiver_delays_the_next_attempt(site):
    from celery.exceptions import Retry

    from consent.tasks import webhook_deliver

    receiver = Recorder(handler=lambda h: answer(h, 429, None, {"Retry-After": "900"}))
    try:
        pk = _delivery(site, f"http://127.0.0.1:{receiver.port}/hook", allow=True)
        before = timezone.now()
        with pytest.raises(Retry):
            webhook_deliver.apply(args=[pk], throw=True)
    finally:
        receiver.close()
    delivery = WebhookDelivery.objects.get(pk=pk)
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_status_code == 429
    assert (delivery.next_attempt_at - before).total_seconds() >= 899  # not the 30 s backoff


@pytest.mark.parametrize("url", ["http://169.254.169.254/hook", "http://10.0.0.1/hook", "http://2130706433/hook"])
def test_the_admin_refuses_an_internal_address_unless_allowed(site, settings, url):
    settings.MAMORU_OUTBOUND_ALLOW_PRIVATE = False
    endpoint = WebhookEndpoint(workspace=site.workspace, name="CRM", url=url, secret="s", purpose_codes=[])
    with pytest.raises(ValidationError) as invalid:
        endpoint.clean()
    assert "allow internal hosts" in invalid.value.message_dict["url"][0]
    endpoint.allow_internal_hosts = True
    endpoint.clean()
