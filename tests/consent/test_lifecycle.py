"""Anonymous → known, merges, erasure, rebuild, chain, versions, restrictions, webhooks, import."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from consent.models import ConsentEvent, ConsentState, Method, WebhookDelivery
from consent.selectors import consent_check, consent_rates_by_purpose, purposes_published
from consent.services import consent_states_rebuild
from tests.audit_tamper import consent_tamper

pytestmark = pytest.mark.django_db
EVENTS = "/api/v1/consent/events"


def check(site, purpose, kind="email", value="taro@example.jp"):
    return consent_check(workspace_id=site.workspace_id, default_jurisdiction="JP", purpose_code=purpose,
                         kind=kind, value=value).as_dict()


def test_anonymous_events_follow_the_browser_to_the_known_person(server, site):
    # given: a browser consented while anonymous, a known customer refused analytics earlier
    server.post(EVENTS, {"browser_id": "browser-anon-1", "purpose": "marketing_email", "state": "given"},
                format="json")
    server.post(EVENTS, {"identity": {"kind": "email", "value": "taro@example.jp"}, "purpose": "analytics",
                         "state": "refused"}, format="json")
    # when: the browser logs in (identity + browser id on one event)
    response = server.post(EVENTS, {"identity": {"kind": "email", "value": "taro@example.jp"},
                                    "browser_id": "browser-anon-1", "purpose": "analytics", "state": "given"},
                           format="json")
    assert response.status_code == 201
    # then: one profile holds the whole history and both decisions
    assert check(site, "marketing_email")["allowed"] is True
    assert check(site, "analytics")["allowed"] is True
    profiles = set(ConsentEvent.objects.values_list("profile_id", flat=True))
    assert len(profiles) == 1 and ConsentEvent.objects.count() == 3
    assert ConsentState.objects.count() == 2
    assert consent_states_rebuild().clean


def test_rebuild_equals_stored_and_reports_differences(server):
    for n, state in enumerate(["given", "refused", "withdrawn", "given"]):
        server.post(EVENTS, {"events": [
            {"browser_id": f"browser-{n % 2:04d}", "purpose": "analytics", "state": state},
            {"browser_id": f"browser-{n % 2:04d}", "purpose": "marketing_email", "state": state},
        ]}, format="json")
    assert consent_states_rebuild().clean
    ConsentState.objects.filter(purpose__code="analytics").update(state="given", method="api")
    ConsentState.objects.filter(purpose__code="marketing_email").first().delete()
    report = consent_states_rebuild()
    assert len(report.missing) == 1 and report.different
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("consent_rebuild_state", stdout=out)
    assert "missing state" in out.getvalue()
    call_command("consent_rebuild_state", "--fix", stdout=io.StringIO())
    assert consent_states_rebuild().clean


@pytest.mark.tampers_evidence
def test_changed_event_is_detected_by_chain_check(server):
    server.post(EVENTS, {"events": [{"browser_id": f"browser-{i:04d}", "purpose": "analytics", "state": "given"}
                                    for i in range(3)]}, format="json")
    call_command("verify_consent_chain", stdout=io.StringIO())
    event = ConsentEvent.objects.order_by("seq")[1]
    with consent_tamper():  # tampering behind the API
        ConsentEvent.objects.filter(pk=event.pk).update(state="refused")
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_consent_chain", stdout=out)
    assert exit_info.value.code == 1 and f"changed: event seq={event.seq}" in out.getvalue()


def test_erasure_redacts_identity_but_keeps_proof_and_chain(server, site):
    from governance.subjects.selectors import profile_get_by_identity
    from governance.subjects.services import profile_shred

    server.post(EVENTS, {"identity": {"kind": "email", "value": "taro@example.jp"}, "purpose": "analytics",
                         "state": "given"}, format="json", HTTP_USER_AGENT="Test/1.0")
    profile = profile_get_by_identity(workspace=site.workspace, kind="email", value="taro@example.jp")
    profile_shred(profile=profile, reason="Art. 17 request")
    event = ConsentEvent.objects.get()
    assert event.identity_index == "" and event.redacted_at is not None
    assert event.proof and event.subject_pseudonym and event.state == "given"
    call_command("verify_consent_chain", stdout=io.StringIO())
    assert check(site, "analytics")["profile_found"] is False


def test_material_change_needs_renewal(server, site, purposes):
    from consent.services import purpose_version_draft, purpose_version_publish

    server.post(EVENTS, {"identity": {"kind": "email", "value": "taro@example.jp"}, "purpose": "analytics",
                         "state": "given"}, format="json")
    draft = purpose_version_draft(purpose=purposes["analytics"], material_change=True,
                                  description_en="Now also shared with a new analytics vendor.")
    purpose_version_publish(version=draft)
    result = check(site, "analytics")
    assert result["allowed"] is False and result["reason"] == "renewal_required" and result["purpose_version"] == 2
    assert ConsentState.objects.get().needs_renewal is True
    assert consent_states_rebuild().clean
    server.post(EVENTS, {"identity": {"kind": "email", "value": "taro@example.jp"}, "purpose": "analytics",
                         "state": "given"}, format="json")
    assert check(site, "analytics")["allowed"] is True
    from consent.services import ConsentError  # noqa: F401 — published versions stay frozen
    from governance.api.errors import Conflict

    with pytest.raises(Conflict):
        purpose_version_publish(version=draft)


def test_restriction_and_record_for_profile(server, site):
    from consent.services import (
        consent_record_for_profile,
        profile_restriction_lift,
        profile_restriction_set,
    )
    from governance.subjects.selectors import profile_get_by_identity

    server.post(EVENTS, {"identity": {"kind": "email", "value": "taro@example.jp"}, "purpose": "analytics",
                         "state": "given"}, format="json")
    profile = profile_get_by_identity(workspace=site.workspace, kind="email", value="taro@example.jp")
    profile_restriction_set(profile=profile, purpose_codes=["analytics"], reason="Art. 21 objection")
    assert check(site, "analytics")["reason"] == "restricted"
    assert check(site, "order_fulfilment")["allowed"] is True
    profile_restriction_set(profile=profile, purpose_codes=None, reason="Art. 18 restriction")
    assert check(site, "order_fulfilment")["allowed"] is False
    profile_restriction_lift(profile=profile)
    assert check(site, "analytics")["allowed"] is True
    consent_record_for_profile(profile=profile, purpose_code="analytics", state="withdrawn", method=Method.DSR)
    assert check(site, "analytics")["reason"] == "consent_withdrawn"
    assert consent_states_rebuild().clean


def test_webhook_delivery_signed_and_retried(server, site, monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from celery.exceptions import Retry

    from consent.models import WebhookEndpoint
    from consent.tasks import webhook_deliver
    from consent.webhooks import webhook_signature
    from governance.crypto import envelope

    sent = []

    class Receiver(BaseHTTPRequestHandler):  # a real receiver on loopback: 500 first, then 200
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            sent.append((self.path, body, dict(self.headers)))
            self.send_response(500 if len(sent) == 1 else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        endpoint = WebhookEndpoint(workspace=site.workspace, name="crm",
                                   url=f"http://127.0.0.1:{receiver.server_port}/hook",
                                   allow_internal_hosts=True,  # the test's receiver is on loopback
                                   data_key_id=envelope.data_key_create(owner="test"))
        endpoint.secret = "whsec_test"
        endpoint.save()
        monkeypatch.setattr(webhook_deliver, "delay", lambda pk: None)
        server.post(EVENTS, {"browser_id": "browser-0001", "purpose": "analytics", "state": "given"}, format="json")
        delivery = WebhookDelivery.objects.get()
        with pytest.raises(Retry):  # the first attempt got HTTP 500
            webhook_deliver.apply(args=[delivery.pk], throw=True)
        delivery.refresh_from_db()
        assert delivery.status == "pending" and delivery.attempts == 1 and delivery.last_status_code == 500
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)  # now due
        webhook_deliver.apply(args=[delivery.pk])
        delivery.refresh_from_db()
        assert delivery.status == "delivered" and delivery.attempts == 2
    finally:
        receiver.shutdown()
        receiver.server_close()
    path, body, headers = sent[-1]
    assert path == "/hook" and len(sent) == 2
    timestamp = int(headers["Mamoru-Signature"].split(",")[0][2:])
    assert headers["Mamoru-Signature"] == webhook_signature(secret="whsec_test", body=body, timestamp=timestamp)
    assert b'"purpose":"analytics"' in body


def test_import_consents_dry_run_and_rejected_rows(tmp_path, site):
    source = tmp_path / "consents.csv"
    source.write_text(
        "workspace,identity_kind,identity_value,purpose,state,occurred_at\n"
        "shop-jp,email,a@example.jp,marketing_email,given,2026-01-05T10:00:00+09:00\n"
        "shop-jp,email,not-an-email,marketing_email,given,\n"
        "shop-jp,phone,090-1234-5678,analytics,refused,\n"
        "nowhere,email,b@example.jp,analytics,given,\n"
        "shop-jp,email,c@example.jp,unknown_purpose,given,\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    call_command("import_consents", str(source), "--dry-run", stdout=out, stderr=io.StringIO())
    assert "2 would be recorded" in out.getvalue() and ConsentEvent.objects.count() == 0
    call_command("import_consents", str(source), stdout=out, stderr=io.StringIO())
    assert ConsentEvent.objects.filter(method="import").count() == 2
    rejected = (tmp_path / "consents.rejected.csv").read_text()
    assert rejected.count("\n") == 4 and "invalid_identity" in rejected and "unknown_purpose" in rejected
    assert "not-an-email" not in rejected  # identity values never go to the report


def test_reports_for_dashboard_and_notice(server):
    from datetime import timedelta

    from django.utils import timezone

    server.post(EVENTS, {"events": [
        {"browser_id": "browser-0001", "purpose": "analytics", "state": "given"},
        {"browser_id": "browser-0002", "purpose": "analytics", "state": "refused"},
    ]}, format="json")
    rows = consent_rates_by_purpose(since=timezone.now() - timedelta(days=1))
    assert rows == [{"date": timezone.now().date(), "purpose_code": "analytics", "given": 1, "refused": 1,
                     "withdrawn": 0}]
    assert [p["code"] for p in purposes_published(locale="ja")][0] == "order_fulfilment"


def test_proof_export_and_admin_chart(server, site, admin_client):
    from consent.exports import consent_proof_export
    from governance.subjects.selectors import profile_get_by_identity

    server.post(EVENTS, {"identity": {"kind": "email", "value": "taro@example.jp"}, "purpose": "analytics",
                         "state": "given"}, format="json")
    profile = profile_get_by_identity(workspace=site.workspace, kind="email", value="taro@example.jp")
    proof = consent_proof_export(profile=profile)
    assert proof["chain"]["events_intact"] and proof["events"][0]["version"] == "KI-CR-v1.1.0"
    page = admin_client.get("/admin/consent/purpose/rates/")
    assert page.status_code == 200 and b"<svg" in page.content


def test_consent_older_than_the_purpose_validity_counts_as_expired(server, site, purposes):
    """A purpose version may limit how long a given consent lasts (``consent_validity_days``)."""
    from datetime import timedelta

    from django.utils import timezone

    from consent.services import purpose_version_draft, purpose_version_publish

    # given: analytics consent lasts 30 days; one person consented 40 days ago, another today
    purpose_version_publish(version=purpose_version_draft(purpose=purposes["analytics"], consent_validity_days=30))
    old = (timezone.now() - timedelta(days=40)).isoformat()
    for value, occurred_at in (("old@example.jp", old), ("new@example.jp", None)):
        event = {"identity": {"kind": "email", "value": value}, "purpose": "analytics", "state": "given"}
        response = server.post(EVENTS, {**event, **({"occurred_at": occurred_at} if occurred_at else {})},
                               format="json")
        assert response.status_code == 201, response.content
    # when: the check is asked over HTTP (the database driver's own datetime values)
    answers = {value: server.get("/api/v1/consent/check", {"identity_kind": "email", "identity_value": value,
                                                           "purpose": "analytics"})
               for value in ("old@example.jp", "new@example.jp")}
    # then
    assert {v: (r.status_code, r.json()["reason"]) for v, r in answers.items()} == {
        "old@example.jp": (200, "expired"), "new@example.jp": (200, "consent_given"),
    }
    assert answers["new@example.jp"].json()["decided_at"].endswith("+00:00")
