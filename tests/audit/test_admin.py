"""The admin: DPO dashboard as home page, the export page, downloads and alert acknowledgement."""

from __future__ import annotations

import pytest

from audit.anomalies import anomalies_evaluate
from audit.models import AuditEntry, Outcome
from audit.models_exports import AnomalyAlert, AnomalyKind, AnomalyRule, AuditExport
from audit.services import access_record

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
    client.post("/admin/audit/anomalyalert/", {"action": "acknowledge", "_selected_action": [alert.pk]})
    alert = AnomalyAlert.objects.get()
    assert alert.acknowledged_by == role_users["dpo"]
