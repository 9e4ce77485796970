"""Browser test: a DPO exports the profile access log from the admin and downloads the CSV."""

from __future__ import annotations

import csv
import io

import pytest

from tests.e2e.test_admin_dsr_approve import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_download_an_audit_export(page, live_server, workspaces, role_users, screenshot):
    from audit.models import AuditEntry, AuditExport
    from audit.services import access_record
    from tests.factories import make_profile

    # given: reads of two profiles in the audit log
    profiles = [make_profile(workspaces[0], seed=i) for i in range(2)]
    for profile in profiles:
        access_record(actor=role_users["support_agent"], obj=profile, fields=["full_name"], via="admin")
    login(page, live_server, role_users["dpo"])

    # when: the DPO opens the export page from the dashboard, filters by actor and downloads CSV
    page.click("text=Export an audit report")
    page.wait_for_selector("#export-form")
    page.fill("#id_actor", role_users["support_agent"].username)
    page.select_option("#id_format", "csv")
    with page.expect_download() as info:
        page.click("#export-download")
    download = info.value

    # then: the file holds exactly the matching entries, and the export was audited
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8-sig").read())))
    expected = AuditEntry.objects.filter(actor=role_users["support_agent"], content_type__model="profile")
    assert sorted(int(r["Seq"]) for r in rows) == sorted(expected.values_list("seq", flat=True))
    assert {r["Profile"] for r in rows} == {str(p.pk) for p in profiles}
    assert download.suggested_filename.endswith(".csv")
    export = AuditExport.objects.get()
    assert export.created_by == role_users["dpo"] and export.status == "done"
    assert AuditEntry.objects.filter(content_type__model="auditexport", object_pk=str(export.pk)).exists()
    page.goto(f"{live_server.url}/admin/audit/auditexport/")
    page.wait_for_selector("#result_list")
    screenshot(page, "exports")
