"""The evidence invariant itself: it finds broken evidence, and it runs after every kind of test."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.invariants import evidence_problems

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.tampers_evidence
def test_evidence_problems_names_a_changed_audit_entry(db):
    # given a sealed read entry
    from django.db import connection

    from audit.models import AuditEntry
    from audit.services import access_record
    from governance.subjects.models import Workspace
    from tests.audit_tamper import audit_tamper

    workspace = Workspace.objects.create(slug="inv", name="Inv")
    entry = access_record(actor=None, obj=workspace, reason="x")
    assert evidence_problems() == []
    # when someone with database access rewrites it
    with audit_tamper(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditEntry._meta.db_table} SET reason = 'y' WHERE id = %s", [entry.pk])
    # then the invariant names it
    assert any("audit chain" in p and "changed" in p for p in evidence_problems())


@pytest.mark.django_db
@pytest.mark.tampers_evidence
def test_evidence_problems_names_a_consent_state_the_events_do_not_produce(workspaces):
    # given a profile that refused marketing
    from consent.demo import purposes_seed
    from consent.models import ConsentState
    from consent.services import consent_record_for_profile
    from tests.factories import make_profile

    purposes_seed()
    profile = make_profile(workspaces[1])
    consent_record_for_profile(profile=profile, purpose_code="marketing_email", state="refused", method="form")
    assert evidence_problems() == []
    # when the derived state is flipped to "given" behind the journal's back
    ConsentState.objects.filter(profile=profile).update(state="given")
    # then the invariant names it
    assert any("consent state differs" in p and "state" in p for p in evidence_problems())


def test_every_kind_of_database_test_is_checked(tmp_path):
    # given three tests that each break the chain (marker, db fixture, transactional db) and are
    # not exempt
    env = {**os.environ, "MAMORU_VAR_DIR": str(tmp_path / "var")}
    for name in ("DATABASE_URL", "MAMORU_KEYSTORE_URL"):
        if env.get(name, "").startswith(("postgres", "mysql")):
            env[name] += "_canary"  # its own test databases, not the ones this run is using
    # when they run
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/core/evidence_canary.py", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    # then the invariant fails each of them at teardown
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert out.count("ERROR at teardown of test_") == 3, out
    assert "evidence invariant broken after this test" in out and "3 errors" in out, out
