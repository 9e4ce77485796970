"""Demo seeder and profile merges."""

from __future__ import annotations

import io

import pytest

from governance.pii import demo
from governance.pii.models import PiiAlert, ScanFinding
from governance.pii.scanner import Finding
from governance.pii.services import findings_store
from governance.subjects.services import IdentityInput, profile_merge, profile_upsert

pytestmark = pytest.mark.django_db


def test_demo_seed_stores_findings_without_values(workspaces, pii_scanner):
    out = io.StringIO()
    demo.seed(stdout=out, credentials={})
    assert ScanFinding.objects.filter(entity_type="EMAIL_ADDRESS").count() == 120
    assert PiiAlert.objects.filter(entity_type="CREDIT_CARD").exists()
    assert "findings seeded" in out.getvalue()


def test_findings_follow_a_merged_profile(workspaces):
    a = profile_upsert(workspace=workspaces[0], identities=[IdentityInput("email", "a@example.jp")]).profile
    b = profile_upsert(workspace=workspaces[0], identities=[IdentityInput("email", "b@example.jp")]).profile
    findings_store(findings=[[Finding("EMAIL_ADDRESS", "email", 1.0, "EmailRecognizer", 0, 12)]],
                   channel="ingest", source="crm", profiles=[b])
    profile_merge(survivor=a, other=b, actor=None, reason="same person")
    assert ScanFinding.objects.get().profile_id == a.pk
