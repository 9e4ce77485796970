"""The hash chain over consent events (same construction as ``audit.chain``, its own key).

``entry_hash = HMAC-SHA256(k, prev_hash || 0x00 || canonical JSON)`` with ``k`` derived from
``MAMORU_PROOF_KEY``. The canonical form covers the subject *pseudonym* (a keyed hash fixed at
write time), never the profile id or the identity's blind index: merges move events between
profiles and erasure blanks the identity link, and the chain still verifies.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from consent.models import ChainHead, ConsentEvent
from governance.hashchain import ChainProblem, ChainWording, chain_digest, chain_verify_rows


def _instant(value: datetime) -> str:
    # In UTC: the database hands every time back in UTC, whatever offset it was written with.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


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
        "at": _instant(event.occurred_at),
        "rec": _instant(event.recorded_at),
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
    return chain_digest(label=b"mamoru-consent-chain-v1", prev_hash=prev_hash, payload=canonical(event))


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


CONSENT_WORDING = ChainWording(
    name=lambda e: f"event seq={e.seq}",
    before=lambda e: f"event {e.id}",
    end="the events end",
)


def chain_verify(events: Iterable[ConsentEvent] | None = None) -> Iterator[ChainProblem]:
    """Yield every problem in chain order: changed, missing, reordered or truncated events."""
    if events is None:
        events = ConsentEvent.objects.order_by("seq").iterator(chunk_size=5000)
    return chain_verify_rows(
        events, digest=event_digest, head=ChainHead.objects.filter(pk=1).first(), wording=CONSENT_WORDING
    )
