"""The consent chain and the state-versus-events check, as the scheduled verification runs them.

Registered in ``audit.verification.chains`` from ``ConsentConfig.ready()`` (the audit
kernel does not import consent). A full run verifies every event and amendment and rebuilds every
state in memory; an incremental run continues after the last verified ``(seq, hash)`` and compares
only the states that new events, new merges or new state rows concern.
"""

from __future__ import annotations

from audit.verification import ChainResult, ChainVerifier, HeadPoint
from consent.chain import chain_check, chain_head
from consent.models import AmendmentKind, ConsentAmendment, ConsentEvent, ConsentState
from governance.hashchain import ChainProblem


def state_problems(report) -> list[ChainProblem]:
    """A rebuild report (``consent_states_rebuild``) as problems: states the events do not produce."""
    problems = [
        ChainProblem(None, None, "state_missing",
                     f"no stored state for profile={key[0]} purpose={key[1]} though its events produce one")
        for key in report.missing
    ]
    problems += [
        ChainProblem(None, None, "state_extra",
                     f"stored state for profile={key[0]} purpose={key[1]} is produced by no event (inserted)")
        for key in report.extra
    ]
    problems += [
        ChainProblem(None, None, "state_different",
                     f"stored state for profile={key[0]} purpose={key[1]} differs from its events: {', '.join(fields)}")
        for key, fields in report.different
    ]
    return problems


def states_check(*, after_seq: int | None = None, after_state_id: int = 0):
    """Compare stored states with the events: all of them, or (``after_seq``) those that events,
    merges or state rows newer than the last run concern. Returns a rebuild report."""
    from consent.selectors import catalogue
    from consent.services import (
        RebuildReport,
        consent_states_compare,
        consent_states_derive,
        consent_states_rebuild,
    )

    if after_seq is None:
        return consent_states_rebuild(fix=False)
    profiles = set(ConsentEvent.objects.filter(seq__gt=after_seq).values_list("profile_id", flat=True))
    profiles |= {a.survivor_ref for a in ConsentAmendment.objects.filter(seq__gt=after_seq, kind=AmendmentKind.MERGE)}
    profiles |= set(ConsentState.objects.filter(id__gt=after_state_id).values_list("profile_id", flat=True))
    report = RebuildReport()
    if not profiles:
        return report
    catalogue.invalidate()
    derived = consent_states_derive(profile_ids=profiles)
    stored = {(s.profile_id, s.purpose_id): s for s in ConsentState.objects.filter(profile_id__in=profiles)}
    return consent_states_compare(derived=derived, stored=stored)


class ConsentChain(ChainVerifier):
    """The consent events and amendments, and the stored states against them."""

    identifier = "consent"

    def verify(self, position: dict | None) -> ChainResult:
        last_state = ConsentState.objects.order_by("-id").values_list("id", flat=True).first() or 0
        after = (int(position["seq"]), str(position["hash"])) if position else None
        run = chain_check(after=after)
        report = states_check(after_seq=after[0] if after else None,
                              after_state_id=int(position.get("state_id", 0)) if position else 0)
        return ChainResult(checked=run.checked, problems=run.problems + state_problems(report),
                           position={"seq": run.last_seq, "hash": run.last_hash, "state_id": last_state})

    def heads(self) -> list[HeadPoint]:
        head = chain_head()
        return [HeadPoint("consent", head.seq, head.seq, head.hash, head.at)] if head.seq else []

    def hash_at(self, key: str, position: int) -> str | None:
        found = ConsentEvent.objects.filter(seq=position).values_list("entry_hash", flat=True).first()
        if found is None:
            found = ConsentAmendment.objects.filter(seq=position).values_list("entry_hash", flat=True).first()
        return found
