"""Audit report exports: rows match the audit log, exports are audited, scope is enforced."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.contenttypes.models import ContentType
from openpyxl import load_workbook

from audit.models import AuditEntry, AuditExport
from governance.api.errors import NotFound
from governance.subjects.models import Profile
from oversight.exporters import UnknownExporter, exporter_get
from oversight.exporters.services import (
    audit_export_create,
    audit_export_download,
    audit_export_run,
    audit_export_stream,
)
from oversight.reports import ACTION_NAMES, ReportFiltersInvalid

pytestmark = pytest.mark.django_db


def _expected(**filters):
    qs = AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(Profile))
    return list(qs.filter(**filters).order_by("seq").values_list("seq", flat=True))


def _csv_rows(body: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def _export(user, fmt="csv", **filters) -> bytes:
    export = audit_export_create(user=user, report="access_log", fmt=fmt, filters=filters, streamed=True)
    return b"".join(audit_export_stream(export=export, user=user))


def test_csv_rows_match_the_audit_log_for_each_filter(audited_profiles, role_users):
    # given
    dpo, agent = role_users["dpo"], role_users["support_agent"]
    profile = audited_profiles["jp"][0]
    cases = [
        ({}, {}),
        ({"profile": str(profile.pk)}, {"object_pk": str(profile.pk)}),
        ({"actor": agent.username}, {"actor": agent}),
        ({"actor": str(agent.pk), "outcome": "denied"}, {"actor": agent, "outcome": "denied"}),
        ({"action": "update"}, {"action": AuditEntry.Action.UPDATE}),
        ({"workspace": "shop-eu"}, {"workspace_id": audited_profiles["eu"][0].workspace_id}),
    ]
    for filters, orm in cases:
        expected = _expected(**orm)
        # when
        rows = _csv_rows(_export(dpo, **filters))
        # then
        assert [int(r["Seq"]) for r in rows] == expected, filters
        assert expected, filters
    entry = AuditEntry.objects.get(seq=int(rows[0]["Seq"]))
    assert rows[0]["Profile"] == entry.object_pk
    assert rows[0]["Action"] == ACTION_NAMES[entry.action]
    assert rows[0]["Entry hash"] == entry.entry_hash


def test_date_range_filter_matches(audited_profiles, role_users):
    entries = list(AuditEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Profile)).order_by("seq"))
    since, until = entries[2].timestamp, entries[5].timestamp
    rows = _csv_rows(_export(role_users["dpo"], since=since.isoformat(), until=until.isoformat()))
    assert [int(r["Seq"]) for r in rows] == _expected(timestamp__gte=since, timestamp__lt=until)


def test_every_format_has_the_same_rows(audited_profiles, role_users):
    dpo = role_users["dpo"]
    expected = _expected()
    jsonl = [json.loads(line) for line in _export(dpo, "jsonl").decode().splitlines()]
    assert [row["seq"] for row in jsonl] == expected
    sheet = load_workbook(io.BytesIO(_export(dpo, "xlsx")), read_only=True).worksheets[0]
    assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == expected
    pdf = _export(dpo, "pdf")
    assert pdf.startswith(b"%PDF") and b"+MamoruCJK" in pdf and b"/FontFile2" in pdf  # CJK font embedded


def test_export_is_audited_and_never_contains_itself(audited_profiles, role_users):
    # given
    dpo = role_users["dpo"]
    profile = audited_profiles["eu"][1]
    before = AuditEntry.objects.count()
    # when
    rows = _csv_rows(_export(dpo, profile=str(profile.pk)))
    # then
    export = AuditExport.objects.get()
    new = AuditEntry.objects.filter(seq__gt=before).order_by("seq")
    kinds = {(e.content_type.model, e.action) for e in new}
    assert ("auditexport", AuditEntry.Action.CREATE) in kinds
    # the export is about this person: an access entry on their profile, not in the file itself
    assert new.filter(object_pk=str(profile.pk), action=AuditEntry.Action.ACCESS).exists()
    assert len(rows) == len(_expected(object_pk=str(profile.pk))) - 1
    assert export.status == "done" and export.rows_done == len(rows)


def test_support_agent_only_exports_their_workspace(audited_profiles, role_users):
    agent = role_users["support_agent"]
    rows = _csv_rows(_export(agent))
    jp_ids = {str(p.pk) for p in audited_profiles["jp"]}
    assert rows and {r["Profile"] for r in rows} <= jp_ids
    assert [int(r["Seq"]) for r in rows] == _expected(workspace_id=audited_profiles["jp"][0].workspace_id)


def test_support_agent_cannot_export_a_profile_outside_their_workspace(audited_profiles, role_users):
    # given
    agent = role_users["support_agent"]
    other = audited_profiles["eu"][0]
    # when / then
    with pytest.raises(NotFound):
        audit_export_create(user=agent, report="access_log", fmt="csv",
                            filters={"profile": str(other.pk)}, streamed=True)
    assert not AuditExport.objects.exists()
    denied = AuditEntry.objects.order_by("-seq").first()
    assert denied.outcome == "denied" and denied.object_pk == str(other.pk) and denied.actor == agent


def test_unknown_filters_and_formats_are_refused(role_users, workspaces):
    with pytest.raises(ReportFiltersInvalid):
        audit_export_create(user=role_users["dpo"], report="access_log", fmt="csv",
                            filters={"profle": "x"}, streamed=True)
    with pytest.raises(UnknownExporter, match="csv, jsonl, pdf, xlsx"):
        exporter_get("docx")


def test_background_export_is_encrypted_at_rest_and_download_is_audited(audited_profiles, role_users):
    # given
    dpo = role_users["dpo"]
    export = audit_export_create(user=dpo, report="access_log", fmt="csv", filters={}, streamed=False)
    # when
    export = audit_export_run(export_id=export.pk)
    # then
    from oversight.exporters.storage import exports_dir

    raw = (exports_dir() / export.file_name).read_bytes()
    body = b"".join(audit_export_download(export=export, user=dpo))
    # The whole CSV header row (tens of bytes), not a bare b"Seq" that random ciphertext can hold.
    header = body.splitlines()[0]
    assert export.data_key_id and raw.startswith(b"MSEALF1\n") and b"," in header
    assert header not in raw
    assert [int(r["Seq"]) for r in _csv_rows(body)] == _expected(seq__lte=export.params["until_seq"])
    assert export.percent == 100 and export.rows_total == export.rows_done
    last = AuditEntry.objects.order_by("-seq").first()
    assert last.content_type.model == "auditexport" and last.action == AuditEntry.Action.ACCESS


def test_marketing_cannot_export(role_users, workspaces):
    from oversight.reports import ExportForbidden

    with pytest.raises(ExportForbidden):
        audit_export_create(user=role_users["marketing"], report="access_log", fmt="csv",
                            filters={}, streamed=True)
