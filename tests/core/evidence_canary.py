"""Canary tests for the evidence invariant (run only by tests/core/test_evidence_invariant.py).

Each one breaks the audit chain the way an attacker with database access would, through the
three ways a test can reach the database. None is marked ``tampers_evidence``, so the invariant
in tests/conftest.py must fail every one of them at teardown. Not collected by the normal run
(the file name does not start with ``test_``).
"""

import pytest
from django.db import connection


def _tamper() -> None:
    from audit.models import AuditEntry
    from audit.services import access_record
    from governance.subjects.models import Workspace
    from tests.audit_tamper import audit_tamper

    workspace = Workspace.objects.create(slug="canary", name="Canary")
    entry = access_record(actor=None, obj=workspace, reason="canary")
    with audit_tamper(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditEntry._meta.db_table} SET object_repr = 'forged' WHERE id = %s", [entry.pk])


@pytest.mark.django_db
def test_marker():
    _tamper()


def test_db_fixture(db):
    _tamper()


def test_transactional_db(transactional_db):
    _tamper()
