"""The hash chain over consent events and their amendments (same construction as the audit chain).

``entry_hash = HMAC-SHA256(k, prev_hash || 0x00 || canonical JSON)`` with ``k`` derived from
``MAMORU_PROOF_KEY``. Events and :class:`~consent.models.ConsentAmendment` records share one
sequence and one head row.

What an event's digest (format v2) covers, column by column (:data:`COVERAGE`; a test keeps it equal
to the model's columns):

* every column as written, including the **profile** it was recorded for, the subject pseudonym
  (a keyed hash of the identity's blind index), whether an identity index was stored, and the
  decoded ``signals``;
* ``profile`` may later change only through a chained ``merge`` amendment listing the event (the
  stored profile must be where the listed merges lead);
* ``identity_index`` must hash to the sealed pseudonym, or be blank with ``redacted_at`` equal to the
  time of a chained ``redact`` amendment listing the event (erasure never edits a sealed value
  without a record proving it).

Rows sealed before the ``upgrade`` amendment (written when a database with older events migrated)
keep their v1 digest, which did not cover the profile, the identity index or the signals.
"""

from __future__ import annotations

import heapq
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils import timezone

from consent.models import AmendmentKind, ChainHead, ConsentAmendment, ConsentEvent
from consent.proof import subject_pseudonym
from governance.hashchain import (
    GENESIS,
    ChainProblem,
    ChainWording,
    chain_digest,
    chain_verify_rows,
)

LABEL_V1 = b"mamoru-consent-chain-v1"
LABEL_V2 = b"mamoru-consent-chain-v2"
LABEL_AMENDMENT = b"mamoru-consent-amendment-v1"
CHAIN_FIELDS = frozenset({"prev_hash", "entry_hash"})
# How each stored column of ConsentEvent is protected.
COVERAGE = {
    "id": "digest", "seq": "digest", "workspace": "digest", "site": "digest",
    "profile": "digest (as recorded) + merge amendments", "subject_pseudonym": "digest",
    "identity_kind": "digest", "identity_index": "digest (present or not) + pseudonym + redact amendments",
    "purpose": "digest", "purpose_version": "digest", "state": "digest", "method": "digest",
    "occurred_at": "digest", "recorded_at": "digest", "jurisdiction": "digest", "language": "digest",
    "page_url": "digest", "notice_url": "digest", "proof": "digest", "actor_label": "digest",
    "tcf_string": "digest", "gpp_string": "digest", "signals": "digest", "note": "digest",
    "redacted_at": "redact amendments",
}


_last_instant: list = [None, None]  # (datetime, text): a batch shares one recorded_at (immutable values)
# One encoder for every digest: json.dumps with options builds a new one per call (half its cost).
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True, default=str).encode


def _instant(value: datetime | None) -> str | None:
    # In UTC: the database hands every time back in UTC, whatever offset it was written with.
    if value is None:
        return None
    if value is _last_instant[0]:
        return _last_instant[1]
    text = value.astimezone(UTC).isoformat(timespec="microseconds")
    _last_instant[0], _last_instant[1] = value, text
    return text


def canonical_v1(event: ConsentEvent) -> bytes:
    """The format of events sealed before the upgrade amendment (kept to verify them)."""
    payload = {
        "id": str(event.id), "seq": event.seq, "ws": event.workspace_id, "site": event.site_id,
        "subject": event.subject_pseudonym, "idk": event.identity_kind, "purpose": event.purpose_id,
        "pv": event.purpose_version, "state": event.state, "method": event.method,
        "at": _instant(event.occurred_at), "rec": _instant(event.recorded_at), "jur": event.jurisdiction,
        "lang": event.language, "page": event.page_url, "notice": event.notice_url, "proof": event.proof,
        "actor": event.actor_label, "tcf": event.tcf_string, "gpp": event.gpp_string, "note": event.note,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical(event: ConsentEvent, *, profile: str, has_index: bool) -> bytes:
    """Format v2: a fixed-order JSON array (no key sorting on the write path)."""
    payload = [
        2, str(event.id), event.seq, event.workspace_id, event.site_id, profile, event.subject_pseudonym,
        event.identity_kind, has_index, event.purpose_id, event.purpose_version, event.state, event.method,
        _instant(event.occurred_at), _instant(event.recorded_at), event.jurisdiction, event.language,
        event.page_url, event.notice_url, event.proof, event.actor_label, event.tcf_string,
        event.gpp_string, event.note, event.signals or {},
    ]
    return _ENCODE(payload).encode()


def event_digest(event: ConsentEvent, prev_hash: str) -> str:
    """The digest of a new event, as sealed (its profile and identity index as they are now)."""
    payload = canonical(event, profile=str(event.profile_id), has_index=bool(event.identity_index))
    return chain_digest(label=LABEL_V2, prev_hash=prev_hash, payload=payload)


def amendment_canonical(record: ConsentAmendment) -> bytes:
    payload = [
        record.kind, record.seq, str(record.profile_ref) if record.profile_ref else None,
        str(record.survivor_ref) if record.survivor_ref else None, [int(s) for s in record.event_seqs],
        _instant(record.recorded_at), record.actor_label, record.note,
    ]
    return _ENCODE(payload).encode()


def amendment_digest(record: ConsentAmendment, prev_hash: str) -> str:
    return chain_digest(label=LABEL_AMENDMENT, prev_hash=prev_hash, payload=amendment_canonical(record))


# --- sealing -----------------------------------------------------------------------------------


def chain_lock() -> ChainHead:
    """Lock the head row (inside the caller's transaction) and return it."""
    ChainHead.objects.get_or_create(pk=1)
    return ChainHead.objects.select_for_update().get(pk=1)


def chain_seal(rows: list) -> None:
    """Give unsaved events (or amendments) seq/prev_hash/entry_hash; call inside the transaction
    that saves them."""
    if not rows:
        return
    head = chain_lock()
    seq, prev = head.seq, head.hash
    for row in rows:
        seq += 1
        row.seq = seq
        row.prev_hash = prev
        row.entry_hash = (amendment_digest if isinstance(row, ConsentAmendment) else event_digest)(row, prev)
        prev = row.entry_hash
    ChainHead.objects.filter(pk=1).update(seq=seq, hash=prev, updated_at=timezone.now())


def _uuid(value) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


# Amendments made while a batch of events is being prepared (a merge while resolving profiles) are
# sealed with that batch, so the batch takes the head lock once, after its state rows, as every
# consent write does (taking it at the merge would invert that order and risk a deadlock).
_deferred: ContextVar[list | None] = ContextVar("consent_deferred_amendments", default=None)


@contextmanager
def amendments_deferred() -> Iterator[list]:
    """Collect amendments instead of sealing them; the caller seals them with its events."""
    token = _deferred.set([])
    try:
        yield _deferred.get()
    finally:
        _deferred.reset(token)


def chain_amend(*, kind: str, event_seqs: list[int], profile_ref=None, survivor_ref=None, actor_label: str = "",
                note: str = "", recorded_at: datetime | None = None) -> ConsentAmendment:
    """Seal and save one amendment record in the caller's transaction (or hand it to the batch
    being prepared, see :func:`amendments_deferred`)."""
    record = ConsentAmendment(
        kind=kind, event_seqs=sorted(int(s) for s in event_seqs), profile_ref=_uuid(profile_ref),
        survivor_ref=_uuid(survivor_ref), recorded_at=(recorded_at or timezone.now()).astimezone(UTC),
        actor_label=actor_label[:150], note=note[:300],
    )
    pending = _deferred.get()
    if pending is not None:
        pending.append(record)
        return record
    chain_seal([record])
    record.save(force_insert=True)
    return record


# --- verification ------------------------------------------------------------------------------


@dataclass
class ChainHeadView:
    seq: int
    hash: str
    at: datetime | None


def chain_head() -> ChainHeadView:
    head = ChainHead.objects.filter(pk=1).first()
    if head is None:
        return ChainHeadView(0, GENESIS, None)
    return ChainHeadView(head.seq, head.hash, head.updated_at)


@dataclass
class _Amendments:
    """Every amendment, indexed by the events it concerns."""

    upgrade_seq: int = 0  # events with a lower seq carry a v1 digest
    moves: dict = field(default_factory=lambda: defaultdict(list))  # event seq → [(amendment seq, from, to)]
    redactions: dict = field(default_factory=dict)  # event seq → amendment
    problems: list = field(default_factory=list)


def _amendments_load() -> _Amendments:
    found = _Amendments()
    for record in ConsentAmendment.objects.order_by("seq").iterator(chunk_size=2000):
        if record.kind == AmendmentKind.UPGRADE and not found.upgrade_seq:
            found.upgrade_seq = record.seq
        for event_seq in record.event_seqs:
            if event_seq >= record.seq:
                found.problems.append(ChainProblem(
                    record.seq, record.pk, "amendment",
                    f"amendment seq={record.seq} names event seq={event_seq}, which comes after it",
                ))
            elif record.kind == AmendmentKind.MERGE:
                found.moves[event_seq].append((record.seq, str(record.profile_ref), str(record.survivor_ref)))
            elif record.kind == AmendmentKind.REDACT:
                found.redactions.setdefault(event_seq, record)
    return found


def _event_problems(event: ConsentEvent, found: _Amendments) -> tuple[str, list[ChainProblem]]:
    """The digest the event should carry given the amendments, and what else is wrong with it."""
    problems = []
    if event.seq < found.upgrade_seq:
        return chain_digest(label=LABEL_V1, prev_hash=event.prev_hash, payload=canonical_v1(event)), problems
    name = f"event seq={event.seq}"
    moves = found.moves.get(event.seq)
    stored_profile = str(event.profile_id)
    sealed_profile = stored_profile
    if moves:
        sealed_profile = moves[0][1]
        at = sealed_profile
        for amendment_seq, source, target in moves:
            if source != at:
                problems.append(ChainProblem(event.seq, event.pk, "changed",
                                             f"{name}: merge amendment seq={amendment_seq} moves it from a profile it was not on"))
            at = target
        if at != stored_profile:
            problems.append(ChainProblem(event.seq, event.pk, "changed",
                                         f"{name} belongs to another profile than its merges lead to (moved)"))
    redaction = found.redactions.get(event.seq)
    if event.identity_index:
        if subject_pseudonym(identity_index=event.identity_index) != event.subject_pseudonym:
            problems.append(ChainProblem(event.seq, event.pk, "changed",
                                         f"{name}: its identity index is not the one it was recorded with"))
        if redaction is not None or event.redacted_at is not None:
            problems.append(ChainProblem(event.seq, event.pk, "changed",
                                         f"{name} is redacted by amendment but carries an identity index (undone)"))
    elif event.redacted_at is not None:
        if redaction is None or event.redacted_at != redaction.recorded_at:
            problems.append(ChainProblem(event.seq, event.pk, "changed",
                                         f"{name} is marked redacted without a redaction amendment proving it"))
        elif str(redaction.profile_ref) != _profile_at(moves, sealed_profile, redaction.seq):
            problems.append(ChainProblem(event.seq, event.pk, "changed",
                                         f"{name}: its redaction amendment names another profile"))
    elif redaction is not None:
        problems.append(ChainProblem(event.seq, event.pk, "changed",
                                     f"{name} is listed by redaction amendment seq={redaction.seq} but not marked redacted"))
    has_index = bool(event.identity_index) or event.redacted_at is not None
    payload = canonical(event, profile=sealed_profile, has_index=has_index)
    return chain_digest(label=LABEL_V2, prev_hash=event.prev_hash, payload=payload), problems


def _profile_at(moves, sealed_profile: str, before_seq: int) -> str:
    at = sealed_profile
    for amendment_seq, _source, target in moves or ():
        if amendment_seq < before_seq:
            at = target
    return at


def _wording_name(row) -> str:
    return f"amendment seq={row.seq}" if isinstance(row, ConsentAmendment) else f"event seq={row.seq}"


def _wording_before(row) -> str:
    return f"amendment {row.pk}" if isinstance(row, ConsentAmendment) else f"event {row.id}"


CONSENT_WORDING = ChainWording(name=_wording_name, before=_wording_before, end="the events end",
                               truncated_hint=" (entries removed at the end)")


def _stream(after_seq: int) -> Iterator:
    events = ConsentEvent.objects.filter(seq__gt=after_seq).order_by("seq").iterator(chunk_size=5000)
    amendments = ConsentAmendment.objects.filter(seq__gt=after_seq).order_by("seq").iterator(chunk_size=2000)
    return heapq.merge(events, amendments, key=lambda row: row.seq)


@dataclass
class ChainRun:
    """What one verification saw: problems (all of them), rows checked and where it ended."""

    problems: list[ChainProblem]
    checked: int
    last_seq: int
    last_hash: str
    head: ChainHeadView


def chain_check(*, after: tuple[int, str] | None = None, rows: Iterable | None = None) -> ChainRun:
    """Verify the chain (from the start, or continuing after a verified ``(seq, hash)``).

    Incremental runs also re-check the earlier events named by new amendments.
    """
    found = _amendments_load()
    start = after or (0, GENESIS)
    head = chain_head()
    extra: list[ChainProblem] = []
    seen = {"rows": 0, "seq": start[0], "hash": start[1]}

    def digest(row, prev_hash: str) -> str:
        seen["rows"] += 1
        seen["seq"], seen["hash"] = row.seq, row.entry_hash
        if isinstance(row, ConsentAmendment):
            return amendment_digest(row, prev_hash)
        value, problems = _event_problems(row, found)
        extra.extend(problems)
        return value

    problems: list[ChainProblem] = []
    head_row = ChainHead.objects.filter(pk=1).first()
    stream = rows if rows is not None else _stream(start[0])
    for problem in chain_verify_rows(stream, digest=digest, head=head_row, wording=CONSENT_WORDING, start=start):
        problems.extend(extra)
        extra.clear()
        problems.append(problem)
    problems.extend(extra)
    problems.extend(p for p in found.problems if p.seq > start[0])
    if after is not None:
        # Earlier events named by amendments sealed since the last run: their own digests again.
        named = {s for s, moves in found.moves.items() if s <= start[0] and any(a > start[0] for a, *_ in moves)}
        named |= {s for s, r in found.redactions.items() if s <= start[0] and r.seq > start[0]}
        for event in ConsentEvent.objects.filter(seq__in=named).order_by("seq"):
            value, more = _event_problems(event, found)
            problems.extend(more)
            if value != event.entry_hash:
                problems.append(ChainProblem(event.seq, event.pk, "changed", f"event seq={event.seq} was changed"))
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    return ChainRun(problems=problems, checked=seen["rows"], last_seq=seen["seq"], last_hash=seen["hash"],
                    head=head)


def chain_verify(events: Iterable | None = None) -> Iterator[ChainProblem]:
    """Yield every problem in chain order: changed, moved, missing, reordered or truncated rows."""
    return iter(chain_check(rows=events).problems)
