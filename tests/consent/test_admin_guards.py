"""Guards on what the DPO can do in the admin: key rotation, webhook filters, chart parameters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from consent.models import KeyKind, SiteKey, WebhookDelivery, WebhookEndpoint
from consent.services import ConsentError, site_key_create, site_key_revoke, site_key_rotate

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/consent/events"


def test_an_expired_or_revoked_key_cannot_be_rotated_back_to_life(site):
    # given: a rotated key whose grace has ended, and a revoked key
    expired, _ = site_key_create(site=site, kind=KeyKind.SECRET)
    site_key_rotate(key=expired, grace=timedelta(0))
    revoked, _ = site_key_create(site=site, kind=KeyKind.SECRET)
    site_key_revoke(key=revoked)
    # when / then
    for key in (expired, revoked):
        with pytest.raises(ConsentError) as refused:
            site_key_rotate(key=key)
        assert refused.value.code == "key_inactive"
    expired.refresh_from_db()
    assert expired.expires_at <= timezone.now()


def test_rotating_again_never_extends_the_grace(site):
    key, _ = site_key_create(site=site, kind=KeyKind.SECRET)
    site_key_rotate(key=key, grace=timedelta(hours=1))
    first_end = SiteKey.objects.get(pk=key.pk).expires_at
    site_key_rotate(key=key)  # default grace is 24 h
    assert SiteKey.objects.get(pk=key.pk).expires_at == first_end


def test_the_admin_rotate_action_reports_keys_it_refused(site, admin_client):
    key, _ = site_key_create(site=site, kind=KeyKind.SECRET)
    site_key_rotate(key=key, grace=timedelta(0))
    page = admin_client.post("/admin/consent/sitekey/", {"action": "rotate", "_selected_action": [key.pk]},
                             follow=True)
    assert page.status_code == 200 and b"was not rotated" in page.content
    assert SiteKey.objects.get(pk=key.pk).expires_at <= timezone.now()


@pytest.mark.parametrize("codes", [42, "marketing_email", {"x": 1}, ["no_such_purpose"], [1, 2]])
def test_webhook_purpose_filters_must_be_known_codes(site, codes):
    endpoint = WebhookEndpoint(workspace=site.workspace, name="CRM", url="https://crm.example/hook",
                               secret="s", purpose_codes=codes)
    with pytest.raises(ValidationError) as invalid:
        endpoint.clean()
    assert "purpose_codes" in invalid.value.message_dict


def test_a_malformed_filter_saved_earlier_does_not_stop_recording(site, server):
    # given: an endpoint saved without validation (before the admin checked it)
    from governance.crypto import envelope

    for name, codes in (("old", 42), ("one", "marketing_email")):
        endpoint = WebhookEndpoint(workspace=site.workspace, name=name, url="http://127.0.0.1:9/hook",
                                   data_key_id=envelope.data_key_create(owner="test"), purpose_codes=codes)
        endpoint.secret = "whsec_test"
        endpoint.save()
    # when
    response = server.post(EVENTS, {"browser_id": "browser-0001", "purpose": "marketing_email", "state": "given"},
                           format="json")
    # then: recorded; the bare string is read as one code, the number is skipped
    assert response.status_code == 201, response.content
    assert list(WebhookDelivery.objects.values_list("endpoint__name", flat=True)) == ["one"]


@pytest.mark.parametrize("days", ["abc", "1e3", "-5", ""])
def test_the_rate_chart_ignores_a_bad_days_parameter(admin_client, purposes, days):
    page = admin_client.get("/admin/consent/purpose/rates/", {"days": days})
    assert page.status_code == 200 and b"<svg" in page.content
