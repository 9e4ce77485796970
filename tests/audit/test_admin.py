"""The admin: DPO dashboard as home page, the export page, downloads and alert acknowledgement."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry, Outcome
from audit.models_exports import AnomalyAlert, AnomalyKind, AnomalyRule, AuditExport
from audit.services import access_record
from oversight.anomalies import anomalies_evaluate

pytestmark = pytest.mark.django_db


def test_dashboard_is_the_admin_home(client, audited_profiles, role_users):
    # given: one open anomaly alert
    AnomalyRule.objects.filter(kind=AnomalyKind.DENIED_ATTEMPTS).update(threshold=0)
    anomalies_evaluate(notify=False)
    client.force_login(role_users["dpo"])
    # when
    page = client.get("/admin/").content.decode()
    # then
    assert 'id="mamoru-dashboard"' in page
    assert "Access anomalies" in page and "Repeated denied attempts" in page
    assert "Key figures for" in page and "Denied attempts" in page


def test_dashboard_in_japanese(client, audited_profiles, role_users):
    client.force_login(role_users["dpo"])
    page = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert 'id="mamoru-dashboard"' in page
    assert "プライバシー・ダッシュボード" in page and "アクセス異常" in page


def test_admin_export_download_now(client, audited_profiles, role_users):
    client.force_login(role_users["dpo"])
    response = client.post("/admin/audit/auditexport/new/?report=access_log",
                           {"report": "access_log", "format": "csv", "action": "access", "mode": "download"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert body.count("\r\n") - 1 == AuditEntry.objects.filter(
        content_type__model="profile", action=AuditEntry.Action.ACCESS,
        seq__lte=AuditExport.objects.get().params["until_seq"]).count()


def test_admin_export_invalid_filter_is_a_message_not_a_500(client, audited_profiles, role_users):
    client.force_login(role_users["dpo"])
    response = client.post("/admin/audit/auditexport/new/",
                           {"report": "access_log", "format": "csv", "since": "nope", "mode": "download"})
    assert response.status_code == 200 and b"not valid" in response.content


def test_admin_background_export_and_download(client, audited_profiles, role_users,
                                              django_capture_on_commit_callbacks):
    from governance.celery import app

    client.force_login(role_users["auditor"])
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/admin/audit/auditexport/new/",
                                   {"report": "access_log", "format": "xlsx", "mode": "background"})
    finally:
        app.conf.task_always_eager = False
    export = AuditExport.objects.get()
    assert response.status_code == 302 and str(export.pk) in response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert "Download" in page and 'http-equiv="refresh"' not in page
    download = client.get(f"/admin/audit/auditexport/{export.pk}/download/")
    assert b"".join(download.streaming_content)[:2] == b"PK"
    # another exporter cannot fetch it
    client.force_login(role_users["support_agent"])
    assert client.get(f"/admin/audit/auditexport/{export.pk}/download/").status_code in (302, 403)


def test_acknowledge_action_in_admin(client, workspaces, role_users):
    AnomalyRule.objects.filter(kind=AnomalyKind.DENIED_ATTEMPTS).update(threshold=0)
    from tests.factories import make_profile

    access_record(actor=role_users["support_agent"], obj=make_profile(workspaces[1]), outcome=Outcome.DENIED)
    [alert] = anomalies_evaluate(notify=False)
    client.force_login(role_users["dpo"])
    # the action asks for a note first: nothing is acknowledged without one
    page = client.post("/admin/audit/anomalyalert/", {"action": "acknowledge", "_selected_action": [alert.pk]})
    assert page.status_code == 200 and 'id="ack-form"' in page.content.decode()
    client.post("/admin/audit/anomalyalert/", {"action": "acknowledge", "_selected_action": [alert.pk],
                                               "confirm": "yes", "note": "  "})
    assert AnomalyAlert.objects.get().acknowledged_at is None
    client.post("/admin/audit/anomalyalert/", {"action": "acknowledge", "_selected_action": [alert.pk],
                                               "confirm": "yes", "note": "agent tested the wrong workspace"})
    alert = AnomalyAlert.objects.get()
    assert alert.acknowledged_by == role_users["dpo"] and alert.acknowledge_note == "agent tested the wrong workspace"


def test_dashboard_requests_by_due_date_with_sla_colours(client, workspaces, role_users):
    import datetime as dt

    from django.utils import timezone

    from dsr.models import DataSubjectRequest
    from dsr.services import dsr_request_submit

    late = dsr_request_submit(workspace=workspaces[0], request_type="erasure", email="late@example.jp")
    soon = dsr_request_submit(workspace=workspaces[0], request_type="access", email="soon@example.jp")
    DataSubjectRequest.objects.filter(pk=late.pk).update(due_at=timezone.now() - dt.timedelta(days=1))
    DataSubjectRequest.objects.filter(pk=soon.pk).update(due_at=timezone.now() + dt.timedelta(days=3))
    client.force_login(role_users["dpo"])
    page = client.get("/admin/").content.decode()
    assert page.index(str(late.pk)[:8]) < page.index(str(soon.pk)[:8])  # by due date
    assert 'class="sla-overdue"' in page and 'class="sla-soon"' in page
    overdue = page.split('id="work-overdue"', 1)[1].split("</section>", 1)[0]
    week = page.split('id="work-week"', 1)[1].split("</section>", 1)[0]
    assert str(late.pk)[:8] in overdue and str(soon.pk)[:8] not in overdue
    assert str(soon.pk)[:8] in week and str(late.pk)[:8] not in week


def test_support_agent_dashboard_is_scoped(client, workspaces, role_users):
    from dsr.services import dsr_request_submit

    other = dsr_request_submit(workspace=workspaces[1], request_type="erasure", email="x@example.eu")
    client.force_login(role_users["support_agent"])
    page = client.get("/admin/").content.decode()
    assert 'id="mamoru-dashboard"' in page and str(other.pk)[:8] not in page
    # a panel the role may not see is left out (registry panels answer None), not hinted at
    assert 'id="dash-anom-h"' not in page and 'id="dash-req-h"' in page


def test_dashboard_charts_consent_and_pii(client, workspaces, role_users):
    from consent.demo import purposes_seed
    from consent.selectors import catalogue
    from consent.services import consent_record_for_profile
    from tests.factories import make_profile

    catalogue.invalidate()
    purposes_seed()
    catalogue.invalidate()
    profile = make_profile(workspaces[0])
    consent_record_for_profile(profile=profile, purpose_code="marketing_email", state="given", method="form")
    client.force_login(role_users["dpo"])
    page = client.get("/admin/").content.decode()
    consent_section = page.split('id="dash-consent-h"', 1)[1].split("</section>", 1)[0]
    assert "<svg" in consent_section and "marketing_email" in consent_section
    assert "cdn" not in consent_section.lower()
    catalogue.invalidate()


def test_key_figures_count_only_what_the_role_may_see(workspaces, role_users):
    # given a request in each workspace
    from dsr.services import dsr_request_submit
    from oversight.dashboard import dashboard_context

    dsr_request_submit(workspace=workspaces[0], request_type="access", email="a@example.jp")
    dsr_request_submit(workspace=workspaces[1], request_type="access", email="b@example.eu")

    def figures(role):
        return dict(dashboard_context(user=role_users[role])["figures"])

    # then marketing sees consent figures only, no requests, PII or audit counts
    marketing = figures("marketing")
    assert "Consent events" in marketing
    assert not {"Requests received", "PII findings", "Profile reads logged", "Denied attempts"} & set(marketing)
    # the support agent counts the requests of their workspace only; the DPO counts all
    assert figures("support_agent").get("Requests received") == 1
    assert figures("dpo")["Requests received"] == 2
    assert "Profile reads logged" in figures("dpo")
