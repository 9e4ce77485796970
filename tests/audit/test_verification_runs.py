"""Scheduled verification of both chains (issue 11, "Verification that a person can use"): runs
are incremental and recorded, a break is shown on the dashboard and mailed to the DPO group, and
signed heads exported outside the database catch a tail removed together with its head row."""

from __future__ import annotations

import io
import json

import pytest
from django.core import mail
from django.core.management import call_command

from audit.models_verification import VerificationRun
from audit.verification import chains, chains_verify, heads_dir, heads_export
from consent.chain import chain_check
from consent.models import ChainHead, ConsentEvent, ConsentState
from oversight.dashboard import dashboard_context
from tests.audit_tamper import consent_tamper
from tests.factories import make_profile

pytestmark = pytest.mark.django_db


@pytest.fixture
def heads(settings, tmp_path):
    settings.MAMORU_CHAIN_HEADS_DIR = str(tmp_path / "chain-heads")
    return tmp_path / "chain-heads"


@pytest.fixture
def consent_events(workspaces):
    """Five decisions by five people (one event each)."""
    from consent.demo import purposes_seed
    from consent.services import consent_record_for_profile

    purposes_seed()

    def add(n: int, start: int = 0) -> list[ConsentEvent]:
        return [
            consent_record_for_profile(profile=make_profile(workspaces[0], seed=500 + i), purpose_code="analytics",
                                       state="given", method="form")
            for i in range(start, start + n)
        ]

    add(5)
    return add


def test_both_chains_are_registered():
    assert {"audit", "consent"} <= set(chains.names())


def test_a_run_verifies_both_chains_records_it_and_exports_signed_heads(heads, consent_events):
    summary = chains_verify()
    run = summary.run
    assert run.ok and run.full and run.problem_count == 0
    assert run.chains["consent"]["checked"] == 5 and run.chains["audit"]["checked"] > 0
    assert VerificationRun.objects.count() == 1
    files = list(heads.glob("chain-heads-*.jsonl"))
    assert len(files) == 1
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    consent_line = next(line for line in lines if line["chain"] == "consent")
    assert consent_line["seq"] == 5 and consent_line["hash"] == ChainHead.objects.get().hash
    assert consent_line["sig"] and {line["chain"] for line in lines} == {"audit", "consent"}


def test_the_next_run_continues_where_the_last_clean_one_ended(heads, consent_events):
    first = chains_verify().run
    consent_events(2, start=10)
    second = chains_verify().run
    assert second.ok and not second.full
    assert second.chains["consent"]["checked"] == 2
    assert second.chains["consent"]["from"]["seq"] == first.chains["consent"]["position"]["seq"] == 5
    full = chains_verify(full=True).run
    assert full.full and full.chains["consent"]["checked"] == 7


@pytest.mark.tampers_evidence
def test_a_break_is_recorded_shown_on_the_dashboard_and_mailed_once(heads, consent_events, role_users):
    dpo = role_users["dpo"]
    assert dpo.email
    chains_verify()
    with consent_tamper():
        ConsentEvent.objects.filter(seq=3).update(note="edited behind the API")
    run = chains_verify(full=True).run
    assert not run.ok and run.problem_count == 1
    assert run.problems[0]["chain"] == "consent" and run.problems[0]["kind"] == "changed"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [dpo.email]
    assert "event seq=3 was changed" in mail.outbox[0].body
    panel = next(p["data"] for p in dashboard_context(user=dpo)["panels"] if p["identifier"] == "verification")
    assert panel["run"]["ok"] is False and panel["run"]["problems"] == 1
    from tests.accounts import OtpVerifiedClient

    client = OtpVerifiedClient()
    client.force_login(dpo)
    page = client.get("/admin/").content.decode()
    assert "Evidence chain verification" in page and "Broken" in page
    # the same break found again is not mailed again, and no head is exported over it
    exported = heads.joinpath(next(iter(p.name for p in heads.iterdir()))).read_text()
    chains_verify(full=True)
    assert len(mail.outbox) == 1
    assert heads.joinpath(next(iter(p.name for p in heads.iterdir()))).read_text() == exported


@pytest.mark.tampers_evidence
def test_removing_the_tail_and_rolling_the_head_back_is_caught_by_the_exported_head(heads, consent_events):
    assert chains_verify().run.ok  # heads exported at seq 5
    # someone with database access removes the last two events and puts the head row back
    doomed = list(ConsentEvent.objects.filter(seq__gt=3))
    ConsentState.objects.filter(last_event__in=doomed).delete()
    ConsentEvent.objects.filter(seq__gt=3).delete()
    third = ConsentEvent.objects.get(seq=3)
    ChainHead.objects.filter(pk=1).update(seq=3, hash=third.entry_hash)
    assert chain_check().problems == []  # the chain alone cannot tell
    summary = chains_verify(full=True)
    assert not summary.run.ok
    found = [(chain, p.kind) for chain, p in summary.problems]
    assert ("exports", "truncated") in found
    assert any("consent: the head exported" in p.message for _c, p in summary.problems)
    # a restored backup looks the same; a person accepts the current heads with a reason: a clean run
    out = io.StringIO()
    call_command("verify_chains", "--accept-heads", "restored backup, ticket 812", stdout=out, stderr=io.StringIO())
    assert "consent: accepted in place of: consent: the head exported" in out.getvalue()
    assert chains_verify().run.ok
    assert "restored backup, ticket 812" in next(heads.glob("chain-heads-*.jsonl")).read_text()


@pytest.mark.tampers_evidence
def test_a_forged_export_line_is_reported(heads, consent_events):
    chains_verify()
    path = next(heads.glob("chain-heads-*.jsonl"))
    line = json.loads(path.read_text().splitlines()[-1])
    line["seq"] = 1
    with open(path, "a") as out:
        out.write(json.dumps(line) + "\n")
    summary = chains_verify()
    assert ("exports", "export_signature") in [(c, p.kind) for c, p in summary.problems]


@pytest.mark.tampers_evidence
def test_a_state_row_inserted_after_a_run_is_found_by_the_next_incremental_run(heads, consent_events):
    from consent.models import Purpose

    assert chains_verify().run.ok
    event = ConsentEvent.objects.get(seq=2)
    ConsentState.objects.create(
        workspace_id=event.workspace_id, profile_id=event.profile_id,
        purpose=Purpose.objects.get(code="marketing_email"), purpose_version=1, state="given", method="api",
        occurred_at=event.occurred_at, last_event=event,
    )
    summary = chains_verify()
    assert not summary.run.full
    assert [(c, p.kind) for c, p in summary.problems] == [("consent", "state_extra")]


def test_the_job_is_scheduled_and_runs_as_a_celery_task(settings, heads, consent_events):
    from audit.tasks import audit_chains_verify_task

    schedule = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()
                if entry["task"] == "audit.chains_verify" and not entry.get("kwargs")}
    assert schedule and any(e.get("kwargs") == {"full": True} for e in settings.CELERY_BEAT_SCHEDULE.values())
    result = audit_chains_verify_task.apply(kwargs={"full": True}).get()
    assert result["ok"] is True and result["checked"] >= 5
    assert heads_dir() == heads


def test_the_command_prints_every_chain_and_exits_1_on_a_break(heads, consent_events):
    out = io.StringIO()
    call_command("verify_chains", "--full", stdout=out)
    assert "consent: 5 entries checked" in out.getvalue()
    heads_export()
    assert len(next(heads.glob("chain-heads-*.jsonl")).read_text().splitlines()) >= 4


@pytest.mark.django_db(transaction=True)
def test_a_verification_reads_one_snapshot_while_writers_commit(workspaces):
    import threading

    from django.db import connection, connections

    from audit.verification import snapshot
    from consent.chain import chain_head
    from consent.demo import purposes_seed
    from consent.services import consent_record_for_profile

    if connection.vendor != "postgresql":
        pytest.skip("REPEATABLE READ snapshots are what PostgreSQL needs; SQLite reads are snapshots already")
    purposes_seed()
    profiles = [make_profile(workspaces[0], seed=700 + i) for i in range(4)]
    for profile in profiles[:3]:
        consent_record_for_profile(profile=profile, purpose_code="analytics", state="given", method="form")

    def write() -> None:
        consent_record_for_profile(profile=profiles[3], purpose_code="analytics", state="given", method="form")
        connections.close_all()

    with snapshot():
        before = chain_head().seq
        writer = threading.Thread(target=write)
        writer.start()
        writer.join()
        run = chain_check()
    assert before == 3 and run.problems == [] and run.last_seq == 3
    assert chain_check().last_seq == 4


def test_an_export_directory_that_cannot_be_written_is_reported(settings, tmp_path, consent_events, role_users):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the directory should be")
    settings.MAMORU_CHAIN_HEADS_DIR = str(blocker / "chain-heads")
    run = chains_verify().run
    run.refresh_from_db()
    assert not run.ok and run.problems[0]["kind"] == "export_failed"
    assert len(mail.outbox) == 1


def test_the_dpo_sees_runs_and_consent_amendments_in_the_admin(heads, consent_events, role_users):
    from tests.accounts import OtpVerifiedClient

    run = chains_verify().run
    client = OtpVerifiedClient()
    client.force_login(role_users["dpo"])
    assert client.get("/admin/audit/verificationrun/").status_code == 200
    assert client.get(f"/admin/audit/verificationrun/{run.pk}/change/").status_code == 200
    assert client.get("/admin/consent/consentamendment/").status_code == 200
    page = client.get("/admin/").content.decode()
    assert "Evidence chain verification" in page and "Intact" in page
