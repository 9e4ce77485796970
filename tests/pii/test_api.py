"""Scan and ingest API: results, permissions, malformed and oversize input, stored findings."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from audit.models import AuditEntry
from governance.access.tokens import api_token_create
from governance.pii.models import AlertStatus, PiiAlert, ScanFinding
from governance.pii.selectors import findings_counts, open_alerts_count
from governance.pii.services import alert_acknowledge
from governance.subjects.models import Identity, Profile

SCAN = "/api/v1/scan/"
INGEST = "/api/v1/ingest/profiles"
pytestmark = pytest.mark.django_db


def post(client, url, body):
    return client.post(url, body, format="json")


@pytest.fixture
def analyst_client(api_client, role_users):
    _token, secret = api_token_create(user=role_users["privacy_analyst"], name="pipeline", scopes=["read", "write"])
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api_client


def test_scan_text_returns_findings_and_redaction(analyst_client, pii_scanner):
    # given an API token of a privacy analyst / when a text is scanned
    response = post(analyst_client, SCAN, {"text": "山田太郎です。メールはtaro@example.jpです。"})
    # then
    assert response.status_code == 200, response.content
    result = response.json()["results"][0]
    assert {f["entity_type"] for f in result["findings"]} >= {"EMAIL_ADDRESS", "PERSON"}
    assert result["redacted"] == "<PERSON>です。メールは<EMAIL_ADDRESS>です。"


def test_scan_records(analyst_client, pii_scanner):
    body = {"records": [{"email": "a@example.com", "notes": "card 4111 1111 1111 1111"}],
            "redact": False}
    response = post(analyst_client, SCAN, body)
    assert response.status_code == 200
    paths = {(f["field_path"], f["entity_type"]) for f in response.json()["results"][0]["findings"]}
    assert paths == {("email", "EMAIL_ADDRESS"), ("notes", "CREDIT_CARD")}
    assert "redacted" not in response.json()["results"][0]


@pytest.mark.parametrize(
    "body, code",
    [
        ({}, "one_input_required"),
        ({"text": "a", "records": []}, "one_input_required"),
        ({"text": "a", "colour": "red"}, "unknown_field"),
        ({"records": ["not an object"]}, "not_a_dict"),
        ({"texts": "not a list"}, "not_a_list"),
        ({"text": "a", "language": "fr"}, "invalid_choice"),
    ],
)
def test_scan_malformed_input_is_400_with_code(analyst_client, body, code):
    response = post(analyst_client, SCAN, body)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_scan_invalid_json_is_400(analyst_client):
    response = analyst_client.post(SCAN, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


@override_settings(MAMORU_PII_MAX_BATCH=3, MAMORU_PII_MAX_TEXT_CHARS=50)
def test_scan_oversize_batch_and_text_are_413(analyst_client):
    response = post(analyst_client, SCAN, {"texts": ["a"] * 4})
    assert response.status_code == 413
    assert response.json()["code"] == "batch_too_large"
    response = post(analyst_client, SCAN, {"records": [{"notes": "x" * 51}]})
    assert response.status_code == 413
    assert response.json()["code"] == "text_too_long"


@override_settings(MAMORU_API_MAX_BODY_BYTES=1000)
def test_scan_body_too_large(analyst_client):
    response = analyst_client.post(
        SCAN, data=json.dumps({"text": "x" * 2000}), content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


def test_scan_permissions(api_client, role_users):
    assert post(api_client, SCAN, {"text": "a"}).status_code in (401, 403)
    api_client.force_authenticate(role_users["marketing"])
    assert post(api_client, SCAN, {"text": "a"}).status_code == 403
    api_client.force_authenticate(role_users["dpo"])
    assert post(api_client, SCAN, {"text": "a"}).status_code == 200


INGEST_BODY = {
    "workspace": "shop-jp",
    "source": "crm-export",
    "profiles": [
        {
            "email": "hanako@example.jp",
            "phone": "090-1234-5678",
            "full_name": "佐藤 花子",
            "address": "東京都新宿区西新宿2-8-1",
            "postal_code": "160-0023",
            "extra": {"notes": "カード 4111 1111 1111 1111 で支払い", "plan": "gold"},
        },
        {"email": "john@example.com", "full_name": "John Smith"},
    ],
}


def test_ingest_flags_unexpected_stores_findings_and_upserts(analyst_client, workspaces, pii_scanner):
    # when
    response = post(analyst_client, INGEST, INGEST_BODY)
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert [p["created"] for p in body["profiles"]] == [True, True]
    assert body["unexpected"] == 1
    profile = Profile.objects.get(pk=body["profiles"][0]["profile_id"])
    assert profile.full_name == "佐藤 花子"
    assert Identity.objects.filter(profile=profile).count() == 2
    unexpected = ScanFinding.objects.get(expected=False)
    assert (unexpected.entity_type, unexpected.field_path) == ("CREDIT_CARD", "extra.notes")
    assert unexpected.profile_id == profile.pk and unexpected.alert_id in body["alerts"]
    assert ScanFinding.objects.filter(expected=True, entity_type="EMAIL_ADDRESS").count() == 2
    assert open_alerts_count() == 1
    rows = findings_counts(since=profile.created_at.replace(hour=0, minute=0))
    assert {"entity_type": "CREDIT_CARD", "count": 1} in [
        {k: r[k] for k in ("entity_type", "count")} for r in rows
    ]
    # the same again: profiles found by identity, the open alert grows
    response = post(analyst_client, INGEST, INGEST_BODY)
    assert [p["created"] for p in response.json()["profiles"]] == [False, False]
    alert = PiiAlert.objects.get()
    assert alert.finding_count == 2


def test_no_raw_value_is_stored_in_findings_or_audit(analyst_client, workspaces, pii_scanner):
    post(analyst_client, INGEST, INGEST_BODY)
    secrets = ["hanako@example.jp", "090-1234-5678", "4111 1111 1111 1111", "佐藤", "西新宿"]
    stored = json.dumps(list(ScanFinding.objects.values()), default=str)
    stored += json.dumps(list(PiiAlert.objects.values()), default=str)
    stored += json.dumps(
        [(e.object_repr, e.changes, e.additional_data, e.reason) for e in AuditEntry.objects.all()],
        default=str, ensure_ascii=False,
    )
    assert ScanFinding.objects.count() >= 6
    for secret in secrets:
        assert secret not in stored


def test_ingest_reject_mode_stores_nothing(analyst_client, workspaces, pii_scanner):
    response = post(analyst_client, INGEST, {**INGEST_BODY, "on_unexpected": "reject"})
    assert response.status_code == 422
    assert response.json()["code"] == "unexpected_pii"
    assert response.json()["unexpected"][0]["field_path"] == "extra.notes"
    assert Profile.objects.count() == 0 and ScanFinding.objects.count() == 0


@pytest.mark.parametrize(
    "change, status, code",
    [
        ({"profiles": [{"email": "a@example.com", "shoe_size": 9}]}, 400, "unknown_field"),
        ({"profiles": [{"full_name": "No Identity"}]}, 400, "identity_required"),
        ({"profiles": [{"email": "not-an-email"}]}, 400, "invalid_identity"),
        ({"profiles": []}, 400, "empty"),
        ({"workspace": "nope"}, 404, "not_found"),
    ],
)
def test_ingest_bad_input(analyst_client, workspaces, pii_scanner, change, status, code):
    response = post(analyst_client, INGEST, {**INGEST_BODY, **change})
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert Profile.objects.count() == 0


@override_settings(MAMORU_PII_MAX_BATCH=1)
def test_ingest_batch_limit(analyst_client, workspaces):
    response = post(analyst_client, INGEST, INGEST_BODY)
    assert response.status_code == 413
    assert response.json()["code"] == "batch_too_large"


def test_alert_acknowledge_is_audited(analyst_client, workspaces, role_users, pii_scanner):
    post(analyst_client, INGEST, INGEST_BODY)
    alert = PiiAlert.objects.get()
    alert_acknowledge(alert=alert, actor=role_users["dpo"], note="checked with the CRM team")
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED and open_alerts_count() == 0
    from django.contrib.contenttypes.models import ContentType

    entry = AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(PiiAlert),
                                      object_pk=str(alert.pk), action=AuditEntry.Action.UPDATE).get()
    assert entry.actor == role_users["dpo"] and "status" in entry.fields


def test_openapi_schema_has_both_endpoints(api_client, role_users):
    api_client.force_authenticate(role_users["dpo"])
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    paths = json.loads(response.content)["paths"] if response["content-type"].startswith(
        "application/json") else None
    if paths is None:
        import yaml

        paths = yaml.safe_load(response.content)["paths"]
    assert "/api/v1/scan/" in paths and "/api/v1/ingest/profiles" in paths
    assert "examples" in json.dumps(paths["/api/v1/scan/"])
