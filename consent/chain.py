"""The hash chain over consent events (same construction as ``audit.chain``, its own key).

``entry_hash = HMAC-SHA256(k, prev_hash || 0x00 || canonical JSON)`` with ``k`` derived from
``MAMORU_PROOF_KEY``. The canonical form covers the subject *pseudonym* (a keyed hash fixed at
write time), never the profile id or the identity's blind index: merges move events between
profiles and erasure blanks the identity link, and the chain still verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

from consent.models import ChainHead, ConsentEvent

GENESIS = "0" * 64


@lru_cache(maxsize=2)
def _key(spec: str) -> bytes:
    return hmac.new(spec.encode(), b"mamoru-consent-chain-v1", hashlib.sha256).digest()


def canonical(event: ConsentEvent) -> bytes:
    payload = {
        "id": str(event.id),
        "seq": event.seq,
        "ws": event.workspace_id,
        "site": event.site_id,
        "subject": event.subject_pseudonym,
        "idk": event.identity_kind,
        "purpose": event.purpose_id,
        "pv": event.purpose_version,
        "state": event.state,
        "method": event.method,
        "at": event.occurred_at.isoformat(timespec="microseconds"),
        "rec": event.recorded_at.isoformat(timespec="microseconds"),
        "jur": event.jurisdiction,
        "lang": event.language,
        "page": event.page_url,
        "notice": event.notice_url,
        "proof": event.proof,
        "actor": event.actor_label,
        "tcf": event.tcf_string,
        "gpp": event.gpp_string,
        "note": event.note,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_digest(event: ConsentEvent, prev_hash: str) -> str:
    return hmac.new(
        _key(settings.MAMORU_PROOF_KEY), prev_hash.encode() + b"\x00" + canonical(event), hashlib.sha256
    ).hexdigest()


def chain_seal(events: list[ConsentEvent]) -> None:
    """Give unsaved events seq/prev_hash/entry_hash; call inside the transaction that saves them."""
    if not events:
        return
    ChainHead.objects.get_or_create(pk=1)
    head = ChainHead.objects.select_for_update().get(pk=1)
    seq, prev = head.seq, head.hash
    for event in events:
        seq += 1
        event.seq = seq
        event.prev_hash = prev
        event.entry_hash = event_digest(event, prev)
        prev = event.entry_hash
    ChainHead.objects.filter(pk=1).update(seq=seq, hash=prev)


@dataclass
class ChainProblem:
    seq: int | None
    event_id: str | None
    kind: str
    message: str


def chain_verify(events: Iterable[ConsentEvent] | None = None) -> Iterator[ChainProblem]:
    """Yield every problem in chain order: changed, missing, reordered or truncated events."""
    if events is None:
        events = ConsentEvent.objects.order_by("seq").iterator(chunk_size=5000)
    expected, prev = 1, GENESIS
    for event in events:
        if event.seq != expected:
            if event.seq > expected:
                yield ChainProblem(
                    expected, str(event.id), "missing",
                    f"seq {expected}–{event.seq - 1} missing before event {event.id} (removed)",
                )
            expected = event.seq
        if event.prev_hash != prev:
            yield ChainProblem(
                event.seq, str(event.id), "reordered",
                f"event seq={event.seq} does not follow its predecessor (removed or reordered)",
            )
        if event_digest(event, event.prev_hash) != event.entry_hash:
            yield ChainProblem(event.seq, str(event.id), "changed", f"event seq={event.seq} was changed")
        prev = event.entry_hash
        expected += 1
    head = ChainHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != expected - 1 or head.hash != prev):
        yield ChainProblem(
            head.seq, None, "truncated",
            f"chain head says seq {head.seq} but the events end at seq {expected - 1}",
        )
