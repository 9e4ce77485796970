"""Global Privacy Control precedence and TCF/GPP strings on events."""

from __future__ import annotations

import pytest

from consent.iab import InvalidSignalString, gpp_decode, tcf_decode
from consent.models import ConsentEvent

EVENTS = "/api/v1/consent/events"
TCF_EXAMPLE = "COw4XqLOw4XqLAAAAAENAXCAAP-gAAAfwIAAACngAI8AEFABgACAA4A.IAPPwAA"
GPP_TCF = "DBABMA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
GPP_TCF_USP = "DBACNYA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA~1YNN"


def states(client, browser_id):
    body = client.get("/api/v1/consent/state", {"browser_id": browser_id}).json()
    return {p["purpose"]: p for p in body["purposes"]}


@pytest.mark.django_db
def test_gpc_opts_out_of_sale_and_sharing(browser):
    """CCPA §7025: Sec-GPC: 1 is an opt-out of sale and sharing for that browser."""
    response = browser.post(EVENTS, {"browser_id": "browser-0001", "purpose": "analytics", "state": "given"},
                            format="json", HTTP_SEC_GPC="1")
    assert response.status_code == 201
    assert sorted(e["purpose"] for e in response.json()["gpc_events"]) == ["data_sale", "personalised_ads"]
    now = states(browser, "browser-0001")
    assert now["data_sale"]["state"] == "refused" and now["data_sale"]["method"] == "gpc"
    assert now["analytics"]["state"] == "given"
    # The same signal again records nothing new.
    again = browser.post(EVENTS, {"browser_id": "browser-0001", "purpose": "analytics", "state": "given"},
                         format="json", HTTP_SEC_GPC="1")
    assert again.json()["gpc_events"] == []


@pytest.mark.django_db
def test_gpc_value_must_be_exactly_one(browser):
    for value in ("0", "true", " 1", "1 "):
        response = browser.post(EVENTS, {"browser_id": "browser-0002", "purpose": "analytics", "state": "given"},
                                format="json", HTTP_SEC_GPC=value)
        assert response.json()["gpc_events"] == [], value


@pytest.mark.django_db
def test_explicit_opt_in_after_gpc_wins(browser):
    """An explicit opt-in made after the GPC signal was seen is kept while GPC stays on."""
    browser.post(EVENTS, {"browser_id": "browser-0003", "purpose": "analytics", "state": "given"},
                 format="json", HTTP_SEC_GPC="1")
    opt_in = browser.post(EVENTS, {"browser_id": "browser-0003", "purpose": "data_sale", "state": "given",
                                   "method": "form"}, format="json", HTTP_SEC_GPC="1")
    assert opt_in.json()["gpc_events"] == []
    browser.post(EVENTS, {"browser_id": "browser-0003", "purpose": "analytics", "state": "given"},
                 format="json", HTTP_SEC_GPC="1")
    now = states(browser, "browser-0003")
    assert now["data_sale"]["state"] == "given" and now["data_sale"]["method"] == "form"
    assert now["personalised_ads"]["state"] == "refused"


@pytest.mark.django_db
def test_opt_in_before_gpc_is_overridden_by_gpc(browser):
    browser.post(EVENTS, {"browser_id": "browser-0004", "purpose": "data_sale", "state": "given"}, format="json")
    browser.get("/api/v1/consent/state", {"browser_id": "browser-0004"}, HTTP_SEC_GPC="1")
    now = states(browser, "browser-0004")
    assert now["data_sale"]["state"] == "refused" and now["data_sale"]["method"] == "gpc"


def test_tcf_decode_known_vector():
    """IAB TCF v2 example string: purposes 1-9 and 11 consented, vendors 2-5, vendor list 23."""
    summary = tcf_decode(TCF_EXAMPLE)
    assert summary["version"] == 2 and summary["policy_version"] == 2
    assert summary["consent_language"] == "EN" and summary["vendor_list_version"] == 23
    assert summary["purposes_consent"] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11]
    assert summary["vendor_consents"] == [2, 3, 4, 5]
    assert summary["created"].startswith("2020-03-26")


def test_gpp_decode_known_vectors():
    """IAB GPP specification examples: header DBABMA = [2]; DBACNYA = [2, 6]; DBABLA = [7]."""
    one = gpp_decode(GPP_TCF)
    assert one["section_ids"] == [2] and one["sections"]["tcfeuv2"]["cmp_id"] == 31
    assert one["sections"]["tcfeuv2"]["publisher_country"] == "DE"
    two = gpp_decode(GPP_TCF_USP)
    assert two["section_ids"] == [2, 6]
    assert two["sections"]["uspv1"] == {"version": 1, "notice": "Y", "opt_out_sale": "N", "lspa_covered": "N"}
    assert gpp_decode("DBABLA~BVQqAAAAAgA.QA")["section_ids"] == [7]


@pytest.mark.parametrize("value", ["", "xx", "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", "CPXx", "C" + "A" * 10])
def test_tcf_malformed(value):
    with pytest.raises(InvalidSignalString):
        tcf_decode(value)


@pytest.mark.parametrize("value", ["DBABMA", "DBABMA~", "CBABMA~x", "DBABMA~1YNN", "DBACNYA~" + "x" * 8])
def test_gpp_malformed(value):
    with pytest.raises(InvalidSignalString):
        gpp_decode(value)


@pytest.mark.django_db
def test_strings_are_stored_with_summary_and_malformed_is_400(server):
    ok = server.post(EVENTS, {"browser_id": "browser-0005", "purpose": "personalised_ads", "state": "given",
                              "tcf_string": TCF_EXAMPLE, "gpp_string": GPP_TCF_USP}, format="json")
    assert ok.status_code == 201
    event = ConsentEvent.objects.get()
    assert event.tcf_string == TCF_EXAMPLE and event.signals["tcf"]["vendor_consents"] == [2, 3, 4, 5]
    assert event.signals["gpp"]["section_ids"] == [2, 6]
    bad = server.post(EVENTS, {"browser_id": "browser-0005", "purpose": "personalised_ads", "state": "given",
                               "tcf_string": "CPXx"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_tcf_string"
    bad = server.post(EVENTS, {"browser_id": "browser-0005", "purpose": "personalised_ads", "state": "given",
                               "gpp_string": "DBABMA~"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_gpp_string"
