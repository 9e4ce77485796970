"""The audit chain: sealed exactly as stored, every column covered, append-only, and verify_audit
names every bad entry (GDPR Art. 5(2) accountability, Art. 32 integrity)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.test import Client

from audit.chain import SEALED_FIELDS, chain_head, chain_verify
from audit.models import CHAIN_FIELDS, AuditEntry, AuditEntryImmutable
from audit.services import access_record, access_record_many
from tests.audit_tamper import audit_tamper
from tests.factories import make_profile


@pytest.fixture
def chained(workspaces, role_users):
    profile = make_profile(workspaces[0])
    for n in range(5):
        access_record(actor=role_users["dpo"], obj=profile, fields=["full_name"], reason=f"read {n}")
    return list(AuditEntry.objects.order_by("seq"))


def _verify(*args) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_audit", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, str(exc) + "\n" + err.getvalue(), out.getvalue()
    return 0, err.getvalue(), out.getvalue()


@pytest.mark.django_db
def test_intact_chain_verifies(chained):
    code, _err, out = _verify()
    assert code == 0
    assert [e.pseq for e in chained] == list(range(1, len(chained) + 1))
    head = chain_head()
    assert f"Head: seq {head.seq}, hash {head.hash}" in out and head.seq == chained[-1].seq


@pytest.mark.django_db
@pytest.mark.tampers_evidence
def test_changed_entry_is_named(chained):
    victim = chained[3]
    with audit_tamper(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET reason = %s WHERE id = %s", ["nothing to see", victim.id])
    code, message, _out = _verify()
    assert code == 1 and f"id={victim.id} seq={victim.seq} was changed" in message


@pytest.mark.django_db
@pytest.mark.tampers_evidence
def test_deleted_entry_is_named(chained):
    victim = chained[2]
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [victim.id])
    code, message, _out = _verify()
    assert code == 1 and f"position {victim.pseq}–{victim.pseq} missing" in message


@pytest.mark.django_db
@pytest.mark.tampers_evidence
def test_swapped_entries_are_named(chained):
    a, b = chained[1], chained[4]
    with audit_tamper(), connection.cursor() as cursor:
        # Swap their positions: each keeps its content but takes the other's place in the chain.
        cursor.execute("UPDATE audit_auditentry SET pseq = -1 WHERE id = %s", [a.id])
        cursor.execute("UPDATE audit_auditentry SET pseq = %s WHERE id = %s", [a.pseq, b.id])
        cursor.execute("UPDATE audit_auditentry SET pseq = %s WHERE id = %s", [b.pseq, a.id])
    code, message, _out = _verify()
    assert code == 1 and f"id={b.id} seq={b.seq} does not follow" in message


@pytest.mark.django_db
@pytest.mark.tampers_evidence
def test_truncated_tail_is_detected(chained):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [chained[-1].id])
    code, message, _out = _verify()
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


# --- Finding 1: sealed before django-auditlog's request hook filled the client address ---------


@pytest.mark.django_db
def test_a_client_cannot_choose_the_address_the_audit_log_records(workspaces, settings):
    # given no trusted proxy (the default)
    settings.MAMORU_TRUSTED_PROXIES = []
    before = AuditEntry.objects.count()
    # when a client claims another address
    Client().post(
        "/api/v1/dsr/requests", {"workspace": "shop-eu", "request_type": "access", "email": "y@example.com"},
        content_type="application/json", HTTP_X_FORWARDED_FOR="203.0.113.7", HTTP_X_FORWARDED_PORT="1",
    )
    # then the connecting address is what the sealed entries say
    new = list(AuditEntry.objects.order_by("seq")[before:])
    assert new and {e.remote_addr for e in new} == {"127.0.0.1"}
    assert list(chain_verify()) == []


@pytest.mark.django_db
@pytest.mark.parametrize(("forwarded", "port", "stored_addr", "stored_port"), [
    ("203.0.113.9, 10.0.0.1", "8443", "203.0.113.9", 8443),
    ("2001:DB8::1", "", "2001:db8::1", None),  # PostgreSQL stores IPv6 lowercased
    ("[2001:db8::2]:443", "-5", "2001:db8::2", None),  # a negative port would fail the INSERT
    # unparsable: the proxy's own address is recorded (and counted by the rate limits), not a 500
    ("not-an-address", "70000", "127.0.0.1", None),
])
def test_anonymous_request_behind_proxy_keeps_chain_intact(workspaces, settings, forwarded, port, stored_addr,
                                                          stored_port):
    settings.MAMORU_TRUSTED_PROXIES = ["127.0.0.1", "10.0.0.0/8"]  # the test client and the proxy tier
    before = AuditEntry.objects.count()
    response = Client().post(
        "/api/v1/dsr/requests",
        {"workspace": "shop-eu", "request_type": "access", "email": "y@example.com"},
        content_type="application/json", HTTP_X_FORWARDED_FOR=forwarded, HTTP_X_FORWARDED_PORT=port,
    )
    assert response.status_code in (200, 201, 202), response.content[:300]
    new = list(AuditEntry.objects.order_by("seq")[before:])
    assert new, "the request wrote no audit entry"
    assert {(e.remote_addr, e.remote_port) for e in new} == {(stored_addr, stored_port)}
    assert list(chain_verify()) == []
    assert _verify()[0] == 0


# --- Finding 2: every stored column is sealed ----------------------------------------------------


def test_every_concrete_column_is_sealed():
    concrete = {f.name for f in AuditEntry._meta.concrete_fields}
    assert {f.name for f in SEALED_FIELDS} == concrete - CHAIN_FIELDS
    assert CHAIN_FIELDS == {"id", "prev_hash", "entry_hash"}


def _other_value(field, entry):
    column = field.column
    value = getattr(entry, field.attname)
    if column in ("seq", "pseq"):
        return value + 100_000
    if column == "partition":
        return value + 1
    if column == "chain_version":
        return 1
    if column in ("actor_id", "content_type_id"):
        return (value or 0) + 1
    if column == "timestamp":
        return value.replace(year=value.year - 1)
    if column == "remote_addr":
        return "198.51.100.77"
    if field.get_internal_type() == "JSONField":
        return json.dumps({"tampered": True})
    if field.get_internal_type() in ("BigIntegerField", "PositiveIntegerField", "PositiveSmallIntegerField",
                                     "IntegerField"):
        return (value or 0) + 1
    if column == "outcome":
        return "denied" if value != "denied" else "allowed"
    return "tampered"


@pytest.mark.django_db
def test_tampering_any_column_is_detected(workspaces, role_users, api_client):
    profile = make_profile(workspaces[0])
    access_record(actor=role_users["dpo"], obj=profile, fields=["full_name"], reason="before")
    api_client.force_authenticate(role_users["dpo"])
    api_client.get(f"/api/v1/profiles/{profile.pk}/", HTTP_X_FORWARDED_FOR="192.0.2.1", HTTP_X_FORWARDED_PORT="1234")
    access_record(actor=role_users["dpo"], obj=profile, fields=["full_name"], reason="after")
    victim = AuditEntry.objects.order_by("seq")[1]
    assert list(chain_verify()) == []
    with audit_tamper():
        for field in SEALED_FIELDS:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE audit_auditentry SET {connection.ops.quote_name(field.column)} = %s WHERE id = %s",
                        [_other_value(field, victim), victim.id],
                    )
                found = [p for p in chain_verify() if p.kind == "changed" and p.row_id == victim.id]
                assert found, f"a changed {field.name} went unnoticed"
                transaction.set_rollback(True)


# --- Nothing changes a sealed row ----------------------------------------------------------------


@pytest.mark.django_db
def test_sealed_entries_cannot_be_changed_or_removed(chained, role_users):
    entry = chained[0]
    entry.reason = "rewritten"
    with pytest.raises(AuditEntryImmutable):
        entry.save()
    with pytest.raises(AuditEntryImmutable):
        entry.delete()
    with pytest.raises(AuditEntryImmutable):
        AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten")
    with pytest.raises(AuditEntryImmutable):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET reason = 'rewritten' WHERE id = %s", [entry.id])
    # Deleting the actor leaves the sealed rows as they were.
    role_users["dpo"].delete()
    assert AuditEntry.objects.get(pk=entry.pk).actor_id == entry.actor_id
    assert list(chain_verify()) == []


@pytest.mark.django_db
def test_version_1_entries_still_verify(chained):
    """Rows sealed before every column was covered keep verifying with their own payload."""
    from audit.chain import _canonical_v1
    from governance.hashchain import GENESIS, chain_digest

    prev = GENESIS
    with audit_tamper(), connection.cursor() as cursor:
        for entry in chained:
            entry.chain_version = 1
            digest = chain_digest(label=b"mamoru-audit-chain-v1", prev_hash=prev, payload=_canonical_v1(entry))
            cursor.execute("UPDATE audit_auditentry SET chain_version = 1, prev_hash = %s, entry_hash = %s "
                           "WHERE id = %s", [prev, digest, entry.id])
            prev = digest
        cursor.execute("UPDATE audit_chainhead SET hash = %s WHERE id = %s", [prev, chained[-1].partition])
    assert list(chain_verify()) == []
    # New entries continue the same partition chain as version 2.
    access_record(actor=None, obj=chained[0].content_type.model_class().objects.first(), reason="new")
    assert AuditEntry.objects.order_by("-seq").first().chain_version == 2
    assert list(chain_verify()) == []


# --- verify_audit reports every break ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.tampers_evidence
def test_verify_audit_reports_every_break_in_a_long_chain(workspaces, role_users):
    profiles = [make_profile(workspaces[0], seed=n) for n in range(3)]
    for _ in range(200):
        access_record_many(actor=role_users["dpo"], objs=profiles, fields=["email"], reason="list")
    entries = list(AuditEntry.objects.order_by("partition", "pseq"))
    assert len(entries) >= 600
    changed, deleted, (swap_a, swap_b), tail = entries[57], entries[301], entries[444:446], entries[-1]
    with audit_tamper(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET object_repr = 'someone else' WHERE id = %s", [changed.id])
        cursor.execute("DELETE FROM audit_auditentry WHERE id IN (%s, %s)", [deleted.id, tail.id])
        cursor.execute("UPDATE audit_auditentry SET pseq = -1 WHERE id = %s", [swap_a.id])
        cursor.execute("UPDATE audit_auditentry SET pseq = %s WHERE id = %s", [swap_a.pseq, swap_b.id])
        cursor.execute("UPDATE audit_auditentry SET pseq = %s WHERE id = %s", [swap_b.pseq, swap_a.id])
    # An entry inserted by hand (a copy of a real one) without a place in the chain.
    intruder = AuditEntry.objects.get(pk=entries[500].pk)
    with audit_tamper(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO audit_auditentry (object_pk, object_repr, action, changes_text, timestamp, "
                       "content_type_id, outcome, reason, fields, partition, chain_version, prev_hash, entry_hash) "
                       "VALUES (%s, %s, 3, '', %s, %s, 'allowed', '', '[]', 1, 2, '', '')",
                       [intruder.object_pk, intruder.object_repr, intruder.timestamp, intruder.content_type_id])
        # And a forged entry appended past the head, with a made-up hash.
        cursor.execute("INSERT INTO audit_auditentry (object_pk, object_repr, action, changes_text, timestamp, "
                       "content_type_id, outcome, reason, fields, partition, pseq, seq, chain_version, prev_hash, "
                       "entry_hash) VALUES (%s, %s, 3, '', %s, %s, 'allowed', '', '[]', %s, %s, %s, 2, %s, %s)",
                       [intruder.object_pk, intruder.object_repr, intruder.timestamp, intruder.content_type_id,
                        tail.partition, tail.pseq + 5, tail.seq + 10_000, tail.entry_hash, "f" * 64])
        forged = cursor.lastrowid if connection.vendor != "postgresql" else None
    code, _message, out = _verify("--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["entries"] == len(entries) - 2 + 2
    forged = forged or AuditEntry.objects.get(pseq=tail.pseq + 5, partition=tail.partition).pk
    assert ("unsealed", forged) in {(p["kind"], p["row_id"]) for p in report["problems"]}
    assert report["head"]["seq"] == tail.seq and report["head"]["hash"] == tail.entry_hash
    kinds = {(p["kind"], p["row_id"]) for p in report["problems"]}
    assert ("changed", changed.id) in kinds
    assert any(p["kind"] == "missing" and p["seq"] == deleted.pseq for p in report["problems"])
    assert ("reordered", swap_a.id) in kinds and ("reordered", swap_b.id) in kinds
    assert any(p["kind"] == "unsealed" for p in report["problems"])
    assert any(p["kind"] == "truncated" for p in report["problems"])
    # --all is still accepted; the human form lists every problem too.
    code, message, out = _verify("--all")
    assert code == 1 and message.count("BROKEN (") == len(report["problems"]) and "Head: seq" in out


@pytest.mark.django_db
def test_verify_audit_json_when_intact(chained):
    code, _err, out = _verify("--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True and report["problems"] == []
    assert report["entries"] == len(chained) and report["head"]["seq"] == chained[-1].seq
    assert report["head"]["hash"] == chained[-1].entry_hash and report["head"]["time"]
