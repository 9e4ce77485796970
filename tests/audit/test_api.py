"""The audit export API under /api/v1/audit/."""

from __future__ import annotations

import csv
import io

import pytest

from audit.models import AuditEntry, AuditExport

pytestmark = pytest.mark.django_db


def test_stream_csv_over_the_api(api_client, audited_profiles, role_users):
    api_client.force_authenticate(role_users["auditor"])
    profile = audited_profiles["jp"][0]
    response = api_client.get(f"/api/v1/audit/reports/access_log/csv?profile={profile.pk}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert {r["Profile"] for r in rows} == {str(profile.pk)}
    assert AuditExport.objects.get().created_by == role_users["auditor"]


def test_problem_responses(api_client, audited_profiles, role_users):
    api_client.force_authenticate(role_users["support_agent"])
    other = audited_profiles["eu"][0]
    response = api_client.get(f"/api/v1/audit/reports/access_log/csv?profile={other.pk}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert api_client.get("/api/v1/audit/reports/access_log/docx").json()["code"] == "unknown_format"
    assert api_client.get("/api/v1/audit/reports/nope/csv").json()["code"] == "unknown_report"
    bad = api_client.get("/api/v1/audit/reports/access_log/csv?since=yesterday")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_filters"
    api_client.force_authenticate(role_users["marketing"])
    assert api_client.get("/api/v1/audit/reports/access_log/csv").status_code == 403


def test_background_export_over_the_api(
    api_client, audited_profiles, role_users, django_capture_on_commit_callbacks
):
    # given: the task runs in-process (a real worker runs it in test_worker.py)
    from governance.celery import app

    app.conf.task_always_eager = True
    try:
        api_client.force_authenticate(role_users["dpo"])
        # when
        with django_capture_on_commit_callbacks(execute=True):
            created = api_client.post(
                "/api/v1/audit/exports/",
                {"report": "access_log", "format": "jsonl", "filters": {"action": "access"}},
                format="json",
            )
    finally:
        app.conf.task_always_eager = False
    # then
    assert created.status_code == 202, created.content
    export_id = created.json()["id"]
    detail = api_client.get(f"/api/v1/audit/exports/{export_id}").json()
    assert detail["status"] == "done" and detail["percent"] == 100
    download = api_client.get(f"/api/v1/audit/exports/{export_id}/download")
    lines = b"".join(download.streaming_content).decode().splitlines()
    assert len(lines) == AuditEntry.objects.filter(
        action=AuditEntry.Action.ACCESS, content_type__model="profile",
        seq__lte=AuditExport.objects.get().params["until_seq"]).count()
    # another user cannot see it
    api_client.force_authenticate(role_users["support_agent"])
    assert api_client.get(f"/api/v1/audit/exports/{export_id}").status_code == 404


def test_unknown_fields_refused(api_client, role_users):
    api_client.force_authenticate(role_users["dpo"])
    response = api_client.post("/api/v1/audit/exports/", {"report": "access_log", "format": "csv",
                               "colour": "red"}, format="json")
    assert response.status_code == 400


def test_reports_listed_and_schema_has_audit_paths(api_client, role_users):
    api_client.force_authenticate(role_users["dpo"])
    listed = {r["identifier"] for r in api_client.get("/api/v1/audit/reports/").json()}
    assert "access_log" in listed
    schema = api_client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert "/api/v1/audit/exports/" in schema.json()["paths"]

