"""Issue 11 finding 3: the consent chain covers who a consent belongs to, its identity link and its
signals; merges and erasure are chained amendments; verification reports every break, prints the
head and compares the stored states with the events."""

from __future__ import annotations

import datetime as dt
import importlib
import io
import json
import uuid

import pytest
from django.core.management import call_command
from django.db import transaction

from consent.chain import CHAIN_FIELDS, COVERAGE, chain_check
from consent.models import AmendmentKind, ChainHead, ConsentAmendment, ConsentEvent, ConsentState
from consent.selectors import consent_check
from tests.audit_tamper import consent_tamper

pytestmark = pytest.mark.django_db
EVENTS = "/api/v1/consent/events"
TCF_EXAMPLE = "COw4XqLOw4XqLAAAAAENAXCAAP-gAAAfwIAAACngAI8AEFABgACAA4A.IAPPwAA"


def record(server, email, purpose, state, **extra):
    response = server.post(EVENTS, {"identity": {"kind": "email", "value": email}, "purpose": purpose,
                                    "state": state, **extra}, format="json")
    assert response.status_code == 201, response.content
    return ConsentEvent.objects.order_by("-seq").first()


def allowed(site, email, purpose):
    return consent_check(workspace_id=site.workspace_id, default_jurisdiction="JP", purpose_code=purpose,
                         kind="email", value=email).as_dict()["allowed"]


def verify_command(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_consent_chain", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


@pytest.mark.tampers_evidence
def test_moving_a_given_consent_to_another_person_is_detected(server, site):
    # given: the victim refused marketing; someone else gave it
    record(server, "victim@example.jp", "marketing_email", "refused")
    given = record(server, "other@example.jp", "marketing_email", "given")
    victim_profile = ConsentEvent.objects.order_by("seq").first().profile_id
    assert allowed(site, "victim@example.jp", "marketing_email") is False
    # when: someone with database access moves the "given" event and rebuilds the state from events
    ConsentEvent.objects.filter(pk=given.pk).update(profile_id=victim_profile)
    call_command("consent_rebuild_state", "--fix", stdout=io.StringIO())
    assert allowed(site, "victim@example.jp", "marketing_email") is True  # what the attack achieves
    # then: the chain check no longer says OK
    code, out = verify_command()
    assert code == 1
    assert f"event seq={given.seq} was changed" in out


@pytest.mark.tampers_evidence
def test_modified_signals_are_detected(server):
    event = record(server, "taro@example.jp", "analytics", "given", tcf_string=TCF_EXAMPLE)
    assert event.signals["tcf"]
    signals = dict(event.signals)
    signals["tcf"] = {**signals["tcf"], "purposes_consent": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}
    with consent_tamper():
        ConsentEvent.objects.filter(pk=event.pk).update(signals=signals)
    code, out = verify_command("--skip-state")
    assert code == 1 and f"event seq={event.seq} was changed" in out


@pytest.mark.tampers_evidence
def test_an_inserted_state_row_is_found_by_the_regular_verification(server, site):
    record(server, "victim@example.jp", "analytics", "refused")
    other = record(server, "other@example.jp", "marketing_email", "given")
    victim_profile = ConsentEvent.objects.order_by("seq").first().profile_id
    # a state row for a purpose the victim never decided on, borrowing someone else's event
    ConsentState.objects.create(
        workspace_id=other.workspace_id, profile_id=victim_profile, purpose_id=other.purpose_id,
        purpose_version=other.purpose_version, state="given", method="api", occurred_at=other.occurred_at,
        last_event=other,
    )
    assert allowed(site, "victim@example.jp", "marketing_email") is True
    code, out = verify_command()
    assert code == 1
    assert "state_extra" in out and str(victim_profile) in out


def _tampered_values(event, other_event, workspaces, other_profile) -> dict:
    later = dt.timedelta(seconds=1)
    return {
        "id": uuid.uuid4(),
        "seq": event.seq + 1000,
        "workspace": workspaces[1].pk,
        "site": None,
        "profile": other_profile,
        "subject_pseudonym": "0" * 64,
        "identity_kind": "phone",
        "identity_index": "f" * 64,
        "purpose": other_event.purpose_id,
        "purpose_version": event.purpose_version + 1,
        "state": "refused",
        "method": "form",
        "occurred_at": event.occurred_at - later,
        "recorded_at": event.recorded_at + later,
        "jurisdiction": "US",
        "language": "xx",
        "page_url": "https://evil.example/",
        "notice_url": "https://evil.example/notice",
        "proof": "0" * 64,
        "actor_label": "mallory",
        "tcf_string": "x",
        "gpp_string": "x",
        "signals": {"tcf": {"purposes_consent": [1]}},
        "note": "changed",
        "redacted_at": event.recorded_at + later,
    }


class _Undo(Exception):
    pass


def test_every_column_of_an_event_is_covered(server, workspaces):
    columns = {f.name for f in ConsentEvent._meta.concrete_fields} - CHAIN_FIELDS
    assert set(COVERAGE) == columns
    first = record(server, "taro@example.jp", "analytics", "given", page_url="https://shop.example/a",
                   notice_url="https://shop.example/n", language="ja", note="n")
    record(server, "taro@example.jp", "analytics", "withdrawn")  # the first is no state's last event
    other = record(server, "hanako@example.jp", "marketing_email", "given")
    values = _tampered_values(first, other, workspaces, other.profile_id)
    assert set(values) == columns  # a new column needs a tampering case here
    assert chain_check().problems == []
    for name, value in values.items():
        attname = ConsentEvent._meta.get_field(name).attname
        try:
            with transaction.atomic(), consent_tamper():
                ConsentEvent.objects.filter(pk=first.pk).update(**{attname: value})
                problems = chain_check().problems
                assert problems, f"changing {name} went unnoticed"
                raise _Undo
        except _Undo:
            pass
    assert chain_check().problems == []


def test_erasure_is_a_chained_redaction_that_verifies(server, site):
    from governance.subjects.selectors import profile_get_by_identity
    from governance.subjects.services import profile_shred

    event = record(server, "taro@example.jp", "analytics", "given")
    profile = profile_get_by_identity(workspace=site.workspace, kind="email", value="taro@example.jp")
    profile_shred(profile=profile, reason="Art. 17 request")
    event.refresh_from_db()
    redaction = ConsentAmendment.objects.get(kind=AmendmentKind.REDACT)
    assert redaction.event_seqs == [event.seq] and redaction.profile_ref == profile.pk
    assert event.identity_index == "" and event.redacted_at == redaction.recorded_at
    assert redaction.seq > event.seq and ChainHead.objects.get().seq == redaction.seq
    assert verify_command()[0] == 0


@pytest.mark.tampers_evidence
def test_a_redaction_without_its_record_is_detected(server):
    event = record(server, "taro@example.jp", "analytics", "given")
    # blanking the identity link in place, as the old erasure did, is not proven by anything
    ConsentEvent.objects.filter(pk=event.pk).update(identity_index="", redacted_at=event.recorded_at)
    code, out = verify_command("--skip-state")
    assert code == 1 and "without a redaction amendment" in out
    from consent.exports import consent_proof_export
    from governance.subjects.models import Profile

    proof = consent_proof_export(profile=Profile.objects.get(pk=event.profile_id))
    assert proof["chain"]["events_intact"] is False


def test_a_merge_is_a_chained_amendment_and_verifies(server, site):
    from governance.subjects.models import Profile
    from governance.subjects.services import profile_merge

    record(server, "taro@example.jp", "analytics", "given")
    record(server, "hanako@example.jp", "marketing_email", "refused")
    taro, hanako = (Profile.objects.get(pk=e.profile_id) for e in ConsentEvent.objects.order_by("seq"))
    moved = list(ConsentEvent.objects.filter(profile=hanako).values_list("seq", flat=True))
    profile_merge(survivor=taro, other=hanako, reason="same person")
    merge = ConsentAmendment.objects.get(kind=AmendmentKind.MERGE)
    assert merge.event_seqs == moved and merge.profile_ref == hanako.pk and merge.survivor_ref == taro.pk
    assert set(ConsentEvent.objects.values_list("profile_id", flat=True)) == {taro.pk}
    assert verify_command()[0] == 0


@pytest.mark.tampers_evidence
def test_a_merged_event_moved_elsewhere_is_detected(server, site):
    from governance.subjects.models import Profile
    from governance.subjects.services import profile_merge

    record(server, "taro@example.jp", "analytics", "given")
    record(server, "hanako@example.jp", "marketing_email", "refused")
    third = record(server, "jiro@example.jp", "analytics", "refused")
    taro, hanako = (Profile.objects.get(pk=e.profile_id) for e in ConsentEvent.objects.order_by("seq")[:2])
    profile_merge(survivor=taro, other=hanako, reason="same person")
    moved = ConsentEvent.objects.get(seq=2)
    ConsentEvent.objects.filter(pk=moved.pk).update(profile_id=third.profile_id)
    code, out = verify_command("--skip-state")
    assert code == 1 and "event seq=2 belongs to another profile" in out


@pytest.mark.tampers_evidence
def test_the_command_reports_every_break_as_json_with_the_head(server):
    for n in range(5):
        record(server, f"user{n}@example.jp", "analytics", "given")
    code, out = verify_command("--json")
    document = json.loads(out)
    assert code == 0 and document["ok"] is True and document["head"]["seq"] == 5
    assert document["head"]["hash"] == ChainHead.objects.get().hash and document["head"]["time"]
    with consent_tamper():
        ConsentEvent.objects.filter(seq__in=[2, 4]).update(note="changed")
    code, out = verify_command("--json")
    document = json.loads(out)
    assert code == 1 and document["ok"] is False
    assert [(p["seq"], p["kind"]) for p in document["problems"]] == [(2, "changed"), (4, "changed")]
    code, text = verify_command()
    assert code == 1 and "head: seq=5 hash=" in text


def test_events_sealed_before_the_upgrade_keep_verifying(server):
    from consent.chain import LABEL_V1, canonical_v1
    from governance.hashchain import GENESIS, chain_digest

    for n in range(3):
        record(server, f"user{n}@example.jp", "analytics", "given")
    # as a database written by the previous release: v1 digests, no amendments
    prev = GENESIS
    with consent_tamper():
        for event in ConsentEvent.objects.order_by("seq"):
            digest = chain_digest(label=LABEL_V1, prev_hash=prev, payload=canonical_v1(event))
            ConsentEvent.objects.filter(pk=event.pk).update(prev_hash=prev, entry_hash=digest)
            prev = digest
    ChainHead.objects.filter(pk=1).update(seq=3, hash=prev)
    assert chain_check().problems  # read as v2 they do not verify
    migration = importlib.import_module("consent.migrations.0005_chain_amendments")
    migration.upgrade_seal(ConsentEvent, ConsentAmendment, ChainHead, "default")
    assert ConsentAmendment.objects.get().seq == 4
    record(server, "user9@example.jp", "analytics", "given")
    assert chain_check().problems == []
    assert ConsentEvent.objects.get(seq=5).entry_hash != ""


def test_a_merge_while_linking_identities_is_sealed_with_the_batch(server):
    server.post(EVENTS, {"browser_id": "browser-anon-1", "purpose": "marketing_email", "state": "given"},
                format="json")
    record(server, "taro@example.jp", "analytics", "refused")
    linked = record(server, "taro@example.jp", "analytics", "given", browser_id="browser-anon-1")
    merge = ConsentAmendment.objects.get(kind=AmendmentKind.MERGE)
    assert merge.seq == linked.seq - 1 and merge.event_seqs in ([1], [2])
    assert len(set(ConsentEvent.objects.values_list("profile_id", flat=True))) == 1
    assert verify_command()[0] == 0


@pytest.mark.tampers_evidence
def test_a_changed_amendment_is_detected(server, site):
    from governance.subjects.selectors import profile_get_by_identity
    from governance.subjects.services import profile_shred

    record(server, "taro@example.jp", "analytics", "given")
    record(server, "hanako@example.jp", "analytics", "given")
    profile = profile_get_by_identity(workspace=site.workspace, kind="email", value="taro@example.jp")
    profile_shred(profile=profile, reason="Art. 17 request")
    # widening the redaction to someone else's event, in the record and in the event
    redaction = ConsentAmendment.objects.get()
    with consent_tamper():
        ConsentAmendment.objects.filter(pk=redaction.pk).update(event_seqs=[1, 2])
    ConsentEvent.objects.filter(seq=2).update(identity_index="", redacted_at=redaction.recorded_at)
    code, out = verify_command("--skip-state")
    assert code == 1 and f"amendment seq={redaction.seq} was changed" in out


def test_the_database_refuses_edits_of_sealed_events_but_not_the_chained_amendments(server, site):
    """Issue 11 "nothing may change a row after it is sealed": consent's triggers, like the audit
    log's, refuse an UPDATE of an event (other than a merge or an erasure) and of an amendment."""
    from django.db import DatabaseError

    from governance.subjects.selectors import profile_get_by_identity
    from governance.subjects.services import profile_shred

    event = record(server, "taro@example.jp", "analytics", "given")
    other = record(server, "hanako@example.jp", "analytics", "given")
    for change in ({"state": "refused"}, {"note": "edited"}, {"entry_hash": "0" * 64},
                   {"identity_index": "f" * 64}, {"identity_index": ""}):
        with pytest.raises(DatabaseError), transaction.atomic():
            ConsentEvent.objects.filter(pk=event.pk).update(**change)
    # The two amendments the model allows go through the triggers (and are chained by the app).
    profile = profile_get_by_identity(workspace=site.workspace, kind="email", value="taro@example.jp")
    profile_shred(profile=profile, reason="Art. 17 request")
    event.refresh_from_db()
    assert event.identity_index == "" and event.redacted_at is not None
    with pytest.raises(DatabaseError), transaction.atomic():  # an erasure is not undone
        ConsentEvent.objects.filter(pk=event.pk).update(redacted_at=None)
    with pytest.raises(DatabaseError), transaction.atomic():
        ConsentAmendment.objects.update(note="edited")
    assert other.state == "given" and verify_command()[0] == 0
