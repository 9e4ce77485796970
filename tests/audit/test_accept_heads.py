"""``verify_chains --accept-heads`` is a clean restart point (QA finding: the accepting run still
printed BROKEN and exited 1, and the incremental runs kept reporting ``truncated`` until a --full
run, because they continued from positions reached before the restored backup)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.db import connection

from audit.models import AuditEntry, ChainHead
from audit.services import access_record
from audit.verification import chains_verify
from tests.factories import make_profile

pytestmark = [pytest.mark.django_db, pytest.mark.tampers_evidence]
REASON = "restored the 2026-11-30 backup, ticket 812"


@pytest.fixture
def heads(settings, tmp_path):
    settings.MAMORU_CHAIN_HEADS_DIR = str(tmp_path / "chain-heads")
    return tmp_path / "chain-heads"


def _reads(profile, n: int) -> None:
    for i in range(n):
        access_record(actor=None, obj=profile, fields=["full_name"], via=f"test:{i}")


def _restore_backup(remove: int) -> ChainHead:
    """What restoring an older backup does to the audit chain: the newest entries of a partition
    are gone and its head row is the backup's. Returns that head as restored."""
    head = ChainHead.objects.order_by("-seq").first()
    assert head.seq > remove
    kept = AuditEntry.objects.get(partition=head.pk, pseq=head.seq - remove)
    table, partition, pseq = (connection.ops.quote_name(n) for n in (AuditEntry._meta.db_table, "partition", "pseq"))
    with connection.cursor() as cursor:  # no trigger refuses a DELETE (removal is what the chain detects)
        cursor.execute(f"DELETE FROM {table} WHERE {partition} = %s AND {pseq} > %s", [head.pk, kept.pseq])  # noqa: S608
    ChainHead.objects.filter(pk=head.pk).update(seq=kept.pseq, hash=kept.entry_hash, last_seq=kept.seq)
    return ChainHead.objects.get(pk=head.pk)


def _verify_chains(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_chains", *args, stdout=out, stderr=io.StringIO())
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


def _lines(heads) -> list[dict]:
    return [json.loads(line) for path in sorted(heads.glob("chain-heads-*.jsonl"))
            for line in path.read_text().splitlines()]


def test_accepting_the_heads_of_a_restored_backup_is_a_clean_restart_point(heads, workspaces):
    profile = make_profile(workspaces[0])
    _reads(profile, 3)
    assert chains_verify().run.ok
    _reads(profile, 4)
    assert chains_verify().run.ok  # heads exported; incremental position at the newest entry
    restored = _restore_backup(remove=2)
    broken = chains_verify()
    assert not broken.run.ok and ("exports", "truncated") in [(c, p.kind) for c, p in broken.problems]

    # when: a person accepts the restored heads
    code, out = _verify_chains("--accept-heads", REASON)

    # then: the run says what was accepted and is clean
    assert code == 0, out
    assert "BROKEN" not in out and "all chains intact" in out
    assert f"current heads exported as accepted: {REASON}" in out
    assert f"audit: accepted in place of: audit:{restored.pk}: the head exported at" in out
    accepted = [line for line in _lines(heads) if line.get("accepted") == REASON]
    assert {line["chain"] for line in accepted} >= {"audit"}
    assert next(line for line in accepted if line["key"] == f"audit:{restored.pk}")["hash"] == restored.hash
    from audit.models_verification import VerificationRun

    run = VerificationRun.objects.order_by("-started_at").first()
    assert run.ok and run.full and run.chains["audit"]["accepted"]["reason"] == REASON
    assert run.chains["audit"]["accepted"]["replaced"]

    # and: the next runs are incremental from the accepted heads, and clean
    _reads(profile, 2)
    later = chains_verify().run
    assert later.ok and not later.full, later.problems
    assert later.chains["audit"]["from"] == run.chains["audit"]["position"]
    assert later.chains["audit"]["from"][str(restored.pk)] == [restored.seq, restored.hash]
    assert later.chains["audit"]["checked"] == 2
    code, out = _verify_chains()
    assert code == 0 and "truncated" not in out, out


def test_heads_are_not_accepted_over_a_chain_broken_in_itself(heads, workspaces):
    profile = make_profile(workspaces[0])
    _reads(profile, 3)
    assert chains_verify().run.ok
    exported = len(_lines(heads))
    table = connection.ops.quote_name(AuditEntry._meta.db_table)
    with connection.cursor() as cursor:  # an entry in the middle of the chain removed
        cursor.execute(f"DELETE FROM {table} WHERE id = %s",  # noqa: S608
                       [AuditEntry.objects.order_by("seq").values_list("id", flat=True)[1]])

    code, out = _verify_chains("--accept-heads", REASON, "--json")

    assert code == 1
    document = json.loads(out)
    assert document["ok"] is False and document["accepted"] is None
    assert ("audit", "missing") in [(p["chain"], p["kind"]) for p in document["problems"]]
    assert len(_lines(heads)) == exported  # nothing appended over the break
    assert not any("accepted" in line for line in _lines(heads))
    assert not chains_verify(full=True).run.ok  # and a full run still reports it


def test_accepting_with_nothing_to_replace_is_clean_too(heads, workspaces):
    _reads(make_profile(workspaces[0]), 2)
    code, out = _verify_chains("--accept-heads", REASON)
    assert code == 0 and "all chains intact" in out and "accepted in place of" not in out, out
    assert any(line.get("accepted") == REASON for line in _lines(heads))
