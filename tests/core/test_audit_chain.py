"""The audit chain: verify_audit exits 1 and names the first bad entry when one was changed,
removed or reordered (GDPR Art. 5(2) accountability, Art. 32 integrity)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.models import AuditEntry
from audit.services import access_record
from tests.factories import make_profile


@pytest.fixture
def chained(workspaces, role_users):
    profile = make_profile(workspaces[0])
    for n in range(5):
        access_record(actor=role_users["dpo"], obj=profile, fields=["full_name"], reason=f"read {n}")
    return list(AuditEntry.objects.order_by("seq"))


def _verify() -> tuple[int, str]:
    try:
        call_command("verify_audit")
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, ""


@pytest.mark.django_db
def test_intact_chain_verifies(chained):
    assert _verify() == (0, "")
    assert [e.seq for e in chained] == list(range(1, len(chained) + 1))


@pytest.mark.django_db
def test_changed_entry_is_named(chained):
    victim = chained[3]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET reason = %s WHERE id = %s", ["nothing to see", victim.id])
    code, message = _verify()
    assert code == 1 and f"id={victim.id} seq={victim.seq} was changed" in message


@pytest.mark.django_db
def test_deleted_entry_is_named(chained):
    victim = chained[2]
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [victim.id])
    code, message = _verify()
    assert code == 1 and f"seq {victim.seq}" in message and "missing" in message


@pytest.mark.django_db
def test_swapped_entries_are_named(chained):
    a, b = chained[1], chained[4]
    with connection.cursor() as cursor:
        # Swap their positions: each keeps its content but takes the other's place in the chain.
        cursor.execute("UPDATE audit_auditentry SET seq = -1 WHERE id = %s", [a.id])
        cursor.execute("UPDATE audit_auditentry SET seq = %s WHERE id = %s", [a.seq, b.id])
        cursor.execute("UPDATE audit_auditentry SET seq = %s WHERE id = %s", [b.seq, a.id])
    code, message = _verify()
    assert code == 1 and f"id={b.id} seq={a.seq}" in message


@pytest.mark.django_db
def test_truncated_tail_is_detected(chained):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [chained[-1].id])
    code, message = _verify()
    assert code == 1 and "removed at the end" in message


@pytest.mark.django_db
def test_entries_never_hold_personal_values(workspaces, role_users, api_client):
    profile = make_profile(workspaces[0], locale="ja_JP", full_name="秘密 花子", email="secret.hanako@example.jp")
    api_client.force_authenticate(role_users["dpo"])
    api_client.post(f"/api/v1/profiles/{profile.pk}/reveal/", {"reason": "DSR 12 verification"}, format="json")
    dump = " ".join(
        str(v) for row in AuditEntry.objects.values_list() for v in row
    )
    assert "秘密" not in dump and "secret.hanako" not in dump
