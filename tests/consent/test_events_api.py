"""Consent events → state, batches, idempotency, key scopes, check answers."""

from __future__ import annotations

import pytest

from consent.models import ConsentEvent, ConsentState

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/consent/events"
CHECK = "/api/v1/consent/check"
STATE = "/api/v1/consent/state"


def check(client, **params):
    response = client.get(CHECK, params)
    assert response.status_code == 200, response.content
    return response.json()


def test_event_updates_state_and_check(server):
    """GDPR Art. 7(1): a recorded consent is provable and the check follows it."""
    # given: nothing recorded — Japan is opt-in
    before = check(server, identity_kind="email", identity_value="hanako@example.jp", purpose="marketing_email")
    assert before["allowed"] is False and before["reason"] == "no_consent"
    # when
    response = server.post(EVENTS, {"identity": {"kind": "email", "value": "Hanako@Example.jp"},
                                    "purpose": "marketing_email", "state": "given", "method": "form",
                                    "language": "ja"}, format="json")
    # then
    assert response.status_code == 201, response.content
    record_id = response.json()["events"][0]["record_id"]
    state = ConsentState.objects.get()
    assert state.state == "given" and str(state.last_event_id) == record_id
    after = check(server, identity_kind="email", identity_value="hanako@example.jp", purpose="marketing_email")
    assert after == {**after, "allowed": True, "reason": "consent_given", "basis": "consent", "state": "given"}
    server.post(EVENTS, {"identity": {"kind": "email", "value": "hanako@example.jp"},
                         "purpose": "marketing_email", "state": "withdrawn"}, format="json")
    withdrawn = check(server, identity_kind="email", identity_value="hanako@example.jp", purpose="marketing_email")
    assert withdrawn["allowed"] is False and withdrawn["reason"] == "consent_withdrawn"
    assert ConsentEvent.objects.count() == 2 and ConsentState.objects.count() == 1


def test_contract_basis_is_allowed_without_consent(server):
    result = check(server, identity_kind="email", identity_value="a@example.com", purpose="order_fulfilment")
    assert result["allowed"] is True and result["basis"] == "contract"


def test_batch_with_a_bad_item_is_rejected_whole(server):
    """Documented: all-or-nothing, with per-item errors."""
    body = {"events": [
        {"browser_id": "browser-0001", "purpose": "analytics", "state": "given"},
        {"browser_id": "browser-0002", "purpose": "no_such_purpose", "state": "given"},
        {"identity": {"kind": "email", "value": "not-an-email"}, "purpose": "analytics", "state": "given"},
    ]}
    response = server.post(EVENTS, body, format="json")
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "batch_invalid"
    assert [(e["index"], e["code"]) for e in problem["errors"]] == [(1, "unknown_purpose"), (2, "invalid_identity")]
    assert ConsentEvent.objects.count() == 0


def test_batch_limit_and_unknown_fields(server):
    too_many = {"events": [{"browser_id": f"browser-{i:05d}", "purpose": "analytics", "state": "given"}
                           for i in range(501)]}
    assert server.post(EVENTS, too_many, format="json").status_code == 400
    unknown = server.post(EVENTS, {"browser_id": "browser-0001", "purpose": "analytics", "state": "given",
                                   "colour": "red"}, format="json")
    assert unknown.status_code == 400


def test_idempotent_replay(server):
    body = {"events": [{"browser_id": "browser-0001", "purpose": "analytics", "state": "given"}]}
    first = server.post(EVENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = server.post(EVENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert ConsentEvent.objects.count() == 1
    other = {"events": [{"browser_id": "browser-0001", "purpose": "analytics", "state": "refused"}]}
    conflict = server.post(EVENTS, other, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_key_reused"


def test_publishable_key_is_limited_to_browser_ids(browser):
    email = {"identity": {"kind": "email", "value": "a@example.com"}, "purpose": "analytics", "state": "given"}
    assert browser.post(EVENTS, email, format="json").status_code == 403
    ok = browser.post(EVENTS, {"browser_id": "browser-0001", "purpose": "analytics", "state": "given"},
                      format="json")
    assert ok.status_code == 201
    assert browser.get(STATE, {"identity_kind": "email", "identity_value": "a@example.com"}).status_code == 403
    state = browser.get(STATE, {"browser_id": "browser-0001"}).json()
    analytics = next(p for p in state["purposes"] if p["purpose"] == "analytics")
    assert analytics["state"] == "given" and analytics["allowed"] is True
    receipt = browser.get(f"/api/v1/consent/receipts/{ok.json()['events'][0]['record_id']}")
    assert receipt.status_code == 403


def test_bad_revoked_and_rotated_keys(site, keys, api_client):
    from consent.authentication import key_cache_clear
    from consent.models import SiteKey
    from consent.services import site_key_revoke, site_key_rotate

    api_client.credentials(HTTP_AUTHORIZATION="Bearer mcsk_nope_nope")
    assert api_client.get(CHECK, {"browser_id": "browser-0001", "purpose": "analytics"}).status_code == 401
    secret_key = SiteKey.objects.get(kind="secret")
    new_key, new_secret = site_key_rotate(key=secret_key)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys['secret']}")
    assert api_client.get(CHECK, {"browser_id": "browser-0001", "purpose": "analytics"}).status_code == 200
    site_key_revoke(key=secret_key)
    key_cache_clear()
    assert api_client.get(CHECK, {"browser_id": "browser-0001", "purpose": "analytics"}).status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {new_secret}")
    assert api_client.get(CHECK, {"browser_id": "browser-0001", "purpose": "analytics"}).status_code == 200
    assert new_secret not in str(list(SiteKey.objects.values()))  # stored hashed only


def test_cors_per_site_origin(browser):
    ok = browser.options(EVENTS, HTTP_ORIGIN="https://shop.example",
                         HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                         HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type,idempotency-key")
    assert ok["Access-Control-Allow-Origin"] == "https://shop.example"
    other = browser.options(EVENTS, HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in other
    denied = browser.get(STATE, {"browser_id": "browser-0001"}, HTTP_ORIGIN="https://evil.example")
    assert denied.status_code == 403


def test_rate_limit_per_key(site, browser):
    site.rate_limit_per_minute = 20
    site.save()
    codes = [browser.get(CHECK, {"browser_id": "browser-0001", "purpose": "analytics"}).status_code
             for _ in range(25)]
    assert codes.count(429) >= 4 and codes[0] == 200


def test_staff_token_with_workspace(role_users, workspaces, purposes, api_client):
    from governance.access.tokens import api_token_create

    _token, marketing = api_token_create(user=role_users["marketing"], name="crm")
    _token, auditor = api_token_create(user=role_users["auditor"], name="audit")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {marketing}")
    result = api_client.get(CHECK, {"identity_kind": "email", "identity_value": "a@example.com",
                                    "purpose": "analytics", "workspace": "shop-eu"})
    assert result.status_code == 200 and result.json()["allowed"] is False
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {auditor}")
    assert api_client.get(CHECK, {"identity_kind": "email", "identity_value": "a@example.com",
                                  "purpose": "analytics", "workspace": "shop-eu"}).status_code == 403


def test_california_is_opt_out_for_sale(server):
    """CCPA: sale is allowed until the consumer opts out."""
    result = check(server, identity_kind="email", identity_value="ca@example.com", purpose="data_sale")
    assert result["allowed"] is False  # shop-jp default jurisdiction is JP: opt-in
    server.post(EVENTS, {"identity": {"kind": "email", "value": "ca@example.com"}, "purpose": "analytics",
                         "state": "given", "jurisdiction": "US-CA"}, format="json")
    result = check(server, identity_kind="email", identity_value="ca@example.com", purpose="data_sale")
    assert result["allowed"] is True and result["reason"] == "opt_out_default" and result["basis"] == "ccpa_sale"


def test_receipt_json_and_page(server, api_client):
    response = server.post(EVENTS, {"browser_id": "browser-0001", "purpose": "analytics", "state": "given",
                                    "language": "ja", "page_url": "https://shop.example/"}, format="json")
    record_id = response.json()["events"][0]["record_id"]
    receipt = server.get(f"/api/v1/consent/receipts/{record_id}").json()
    assert receipt["version"] == "KI-CR-v1.1.0" and receipt["consentReceiptID"] == record_id
    assert receipt["iso27560"]["event"]["state"] == "given"
    assert "browser-0001" not in str(receipt)
    page = api_client.get(receipt["html_url"].split("testserver")[1])
    assert page.status_code == 200 and "アクセス解析" in page.content.decode()
    assert api_client.get(f"/consent/receipts/{record_id}/?t=forged").status_code == 404


def test_purposes_catalogue_etag(api_client, purposes):
    first = api_client.get("/api/v1/purposes/?lang=ja")
    assert first.status_code == 200
    names = {p["code"]: p["name"] for p in first.json()}
    assert names["marketing_email"] == "メールマガジン"
    cross = next(p for p in first.json() if p["code"] == "cross_border_transfer")
    assert cross["legal_basis"]["appi"] == "cross_border" and cross["defaults"]["US-CA"] == "opt_out"
    again = api_client.get("/api/v1/purposes/?lang=ja", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again["ETag"] == first["ETag"]
    assert again["Cache-Control"] == first["Cache-Control"] and "Content-Type" not in again
    for sent in ("*", f'W/{first["ETag"]}', f'"other", {first["ETag"]}'):
        assert api_client.get("/api/v1/purposes/?lang=ja", HTTP_IF_NONE_MATCH=sent).status_code == 304, sent
    assert api_client.get("/api/v1/purposes/?lang=ja", HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_gpc_well_known(api_client):
    body = api_client.get("/.well-known/gpc.json").json()
    assert body["gpc"] is True and len(body["lastUpdate"]) == 10


def test_preference_centre_page_and_its_token(site, api_client):
    import re

    page = api_client.get("/consent/preferences/shop/?lang=ja")
    assert page.status_code == 200
    html = page.content.decode()
    assert "プライバシー設定" in html and "mamoru-consent.js" in html
    token = re.search(r'key: "(mcpt_[^"]+)"', html).group(1).replace("\\u002D", "-")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    given = api_client.post(EVENTS, {"browser_id": "browser-pref-1", "purpose": "analytics", "state": "given",
                                     "method": "preference_centre"}, format="json")
    assert given.status_code == 201
    email = {"identity": {"kind": "email", "value": "a@example.com"}, "purpose": "analytics", "state": "given"}
    assert api_client.post(EVENTS, email, format="json").status_code == 403
    script = api_client.get("/consent/mamoru-consent.js")
    assert script.status_code == 200 and b"MamoruConsent" in b"".join(script.streaming_content)


def test_demo_seed_creates_site_and_keys(workspaces):
    import io

    from consent.demo import seed

    credentials: dict = {}
    seed(stdout=io.StringIO(), credentials=credentials)
    demo = credentials["consent_demo_site"]
    assert demo["publishable_key"].startswith("mcpk_") and demo["secret_key"].startswith("mcsk_")
    from consent.models import ConsentEvent

    assert ConsentEvent.objects.filter(site__slug="demo-shop").count() == 900


def test_future_occurred_at_is_rejected(server):
    response = server.post(EVENTS, {"browser_id": "browser-0001", "purpose": "analytics", "state": "given",
                                    "occurred_at": "2999-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "occurred_at_in_future"


def test_field_errors_in_a_batch_use_the_documented_per_item_format(server):
    """Type and choice errors are reported like rule errors: batch_invalid, one entry per bad item."""
    body = {"events": [
        {"browser_id": "browser-0001", "purpose": "analytics", "state": "given"},
        {"browser_id": "browser-0001", "purpose": "analytics", "state": "maybe"},
        {"browser_id": "browser-0002", "purpose": "analytics", "state": "given", "colour": "red"},
        {"identity": {"kind": "fax", "value": "x"}, "purpose": "analytics", "state": "given"},
    ]}
    response = server.post(EVENTS, body, format="json")
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "batch_invalid"
    assert [(e["index"], e["field"]) for e in problem["errors"]] == [(1, "state"), (2, "colour"), (3, "identity.kind")]
    assert all(e["code"] and e["detail"] for e in problem["errors"])
    assert ConsentEvent.objects.count() == 0
    # A single event: its own code at the top, and the same errors list.
    single = server.post(EVENTS, body["events"][1], format="json").json()
    assert single["code"] == "invalid_choice" and single["errors"][0]["field"] == "state"
