"""Reports built from the other modules: request register, consent proof, Art. 30, APPI records."""

from __future__ import annotations

import csv
import io

import pytest

from governance.api.errors import NotFound
from oversight.exporters.services import audit_export_create, audit_export_stream
from tests.factories import make_profile

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _catalogue():
    from consent.demo import purposes_seed
    from consent.selectors import catalogue

    catalogue.invalidate()
    purposes_seed()
    catalogue.invalidate()
    yield
    catalogue.invalidate()


def _rows(user, report, fmt="csv", **filters) -> list[dict]:
    export = audit_export_create(user=user, report=report, fmt=fmt, filters=filters, streamed=True)
    body = b"".join(audit_export_stream(export=export, user=user))
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def _consent(profile, code, state="given"):
    from consent.services import consent_record_for_profile

    return consent_record_for_profile(profile=profile, purpose_code=code, state=state, method="form")


def test_request_register_rows_and_metrics(workspaces, role_users):
    from dsr.models import DataSubjectRequest, RequestStatus
    from dsr.services import dsr_request_submit

    jp = dsr_request_submit(workspace=workspaces[0], request_type="erasure", email="a@example.jp")
    eu = dsr_request_submit(workspace=workspaces[1], request_type="access", email="b@example.eu")
    DataSubjectRequest.objects.filter(pk=eu.pk).update(status=RequestStatus.REJECTED, rejection_reason="manifestly unfounded")
    rows = _rows(role_users["dpo"], "request_register")
    assert {r[0] for r in rows[1:]} == {str(jp.pk), str(eu.pk)}
    rejected = next(r for r in rows if r[0] == str(eu.pk))
    assert rejected[11] == "rejected" and rejected[12] == "manifestly unfounded"
    # the support agent sees only their workspace's requests
    assert [r[0] for r in _rows(role_users["support_agent"], "request_register")[1:]] == [str(jp.pk)]
    # §7102 metrics in the PDF summary
    export = audit_export_create(user=role_users["dpo"], report="request_register", fmt="xlsx", filters={}, streamed=True)
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(b"".join(audit_export_stream(export=export, user=role_users["dpo"]))))
    about = {row[0]: row[1] for row in book["About"].iter_rows(values_only=True)}
    assert about["access"].startswith("received 1, complied 0, denied 1")


def test_consent_proof_lists_the_subjects_events(workspaces, role_users):
    profile = make_profile(workspaces[0])
    other = make_profile(workspaces[0])
    events = [_consent(profile, "marketing_email"), _consent(profile, "marketing_email", "withdrawn")]
    _consent(other, "analytics")
    rows = _rows(role_users["dpo"], "consent_proof", profile=str(profile.pk))
    assert [r[0] for r in rows[1:]] == [str(e.pk) for e in events]
    assert [r[5] for r in rows[1:]] == ["given", "withdrawn"]


def test_consent_proof_outside_the_workspace_is_refused(workspaces, role_users):
    profile = make_profile(workspaces[1])
    with pytest.raises(NotFound):
        _rows(role_users["support_agent"], "consent_proof", profile=str(profile.pk))


def test_records_of_processing_from_purposes(workspaces, role_users):
    from consent.selectors import purposes_published

    rows = _rows(role_users["auditor"], "records_of_processing")
    assert [r[0] for r in rows[1:]] == [p["code"] for p in purposes_published(locale="en")]
    sale = next(r for r in rows if r[0] == "data_sale")
    assert sale[5].startswith("第三者提供") and "encryption" in sale[11]  # a label, not the code


def test_appi_third_party_records(workspaces, role_users):
    profile = make_profile(workspaces[0], locale="ja_JP")
    given = _consent(profile, "data_sale")
    _consent(profile, "marketing_email")  # not a third-party provision
    _consent(profile, "cross_border_transfer", "refused")  # refused: nothing was provided
    rows = _rows(role_users["dpo"], "third_party_provision")
    assert [(r[2], r[4], r[7]) for r in rows[1:]] == [(str(profile.pk), "data_sale", str(given.pk))]
