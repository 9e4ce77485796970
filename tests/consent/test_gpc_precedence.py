"""GPC and explicit choices in the same request; times with offsets in the provable record."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from consent.chain import chain_verify
from consent.models import ConsentEvent

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/consent/events"
CHECK = "/api/v1/consent/check"


def _allowed(client, browser_id: str, purpose: str) -> tuple[bool, str]:
    body = client.get(CHECK, {"browser_id": browser_id, "purpose": purpose}).json()
    return body["allowed"], body["reason"]


def test_an_opt_in_sent_with_the_signal_survives_the_next_signal(browser):
    """Documented: explicit choices in the same request as the signal count as later."""
    # given: an explicit opt-in of a sale/sharing purpose sent together with Sec-GPC: 1
    first = browser.post(EVENTS, {"browser_id": "browser-gpc-1", "purpose": "personalised_ads", "state": "given"},
                         format="json", HTTP_SEC_GPC="1")
    assert first.status_code == 201
    assert _allowed(browser, "browser-gpc-1", "personalised_ads") == (True, "consent_given")
    # when: the browser keeps sending the signal
    browser.get("/api/v1/consent/state", {"browser_id": "browser-gpc-1"}, HTTP_SEC_GPC="1")
    # then: the opt-in stands; the other sale/sharing purpose is opted out
    assert _allowed(browser, "browser-gpc-1", "personalised_ads") == (True, "consent_given")
    assert _allowed(browser, "browser-gpc-1", "data_sale")[0] is False


def test_a_backdated_opt_in_sent_with_the_signal_still_counts_as_later(browser):
    earlier = (timezone.now() - timedelta(seconds=30)).isoformat()
    response = browser.post(EVENTS, {"browser_id": "browser-gpc-2", "purpose": "personalised_ads", "state": "given",
                                     "occurred_at": earlier}, format="json", HTTP_SEC_GPC="1")
    assert response.status_code == 201 and response.json()["events"][0]["state"] == "given"
    assert _allowed(browser, "browser-gpc-2", "personalised_ads") == (True, "consent_given")


def test_times_with_any_offset_keep_the_chain_intact(server, settings):
    """The chain hashes instants in UTC: the database gives them back in UTC whatever was sent
    (and whatever ``TIME_ZONE`` the input is converted to on the way in)."""
    settings.TIME_ZONE = "Asia/Tokyo"
    # given: the same kind of event sent with a Japanese and a negative offset
    for name, offset in (("tokyo", "+09:00"), ("newyork", "-05:00")):
        at = (timezone.now() - timedelta(hours=1)).replace(microsecond=123456)
        stamp = at.astimezone(timezone.get_fixed_timezone(int(offset[:3]) * 60)).isoformat()
        assert stamp.endswith(offset)
        response = server.post(EVENTS, {"browser_id": f"browser-tz-{name}", "purpose": "analytics",
                                        "state": "given", "occurred_at": stamp}, format="json")
        assert response.status_code == 201, response.content
        assert ConsentEvent.objects.get(pk=response.json()["events"][0]["record_id"]).occurred_at == at
    # then: every event verifies against what the database holds
    assert list(chain_verify()) == []
    assert ConsentEvent.objects.count() == 2
