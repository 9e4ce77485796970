"""The hash chain over audit entries.

Each entry's ``entry_hash`` is HMAC-SHA256 (key derived from ``MAMORU_PROOF_KEY``) over the previous
hash and a canonical JSON of the entry. Sequence numbers are contiguous. A changed entry breaks its
own hash, a removed one leaves a gap, a reordered pair breaks ``prev_hash``; without the key the
chain cannot be recomputed after tampering.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from django.db import connection
from django.utils import timezone

from audit.models import AuditEntry, ChainHead
from governance.hashchain import ChainProblem, ChainWording, chain_digest, chain_verify_rows


def _canonical(entry: AuditEntry) -> bytes:
    ts = entry.timestamp
    payload = {
        "seq": entry.seq,
        "ts": ts.isoformat(timespec="microseconds") if ts else None,
        "ct": entry.content_type_id,
        "pk": entry.object_pk,
        "repr": entry.object_repr,
        "action": entry.action,
        "actor": entry.actor_id,
        "actor_email": entry.actor_email or "",
        "changes": entry.changes,
        "changes_text": entry.changes_text or "",
        "data": entry.additional_data,
        "cid": entry.cid or "",
        "addr": entry.remote_addr or "",
        "outcome": entry.outcome,
        "reason": entry.reason,
        "fields": entry.fields,
        "ws": entry.workspace_id,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def entry_digest(entry: AuditEntry, prev_hash: str) -> str:
    return chain_digest(label=b"mamoru-audit-chain-v1", prev_hash=prev_hash, payload=_canonical(entry))


def _head_table() -> str:
    return connection.ops.quote_name(ChainHead._meta.db_table)


def chain_seal(entries: list[AuditEntry]) -> None:
    """Assign seq/prev_hash/entry_hash to unsaved entries; the caller saves them in the same
    transaction. The chain head row is locked (``FOR UPDATE``; SQLite's write lock is taken by
    ``BEGIN IMMEDIATE``), so concurrent writers in any number of processes queue here."""
    if not entries:
        return
    if not connection.in_atomic_block:
        raise RuntimeError("chain_seal must run inside the transaction that saves the entries")
    table = _head_table()
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    # Raw SQL: this runs on every read of personal data, and the ORM's overhead dominated it.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT seq, hash FROM {table} WHERE id = 1{lock}")  # noqa: S608 - constant
        row = cursor.fetchone()
        if row is None:
            ChainHead.objects.get_or_create(pk=1)
            cursor.execute(f"SELECT seq, hash FROM {table} WHERE id = 1{lock}")  # noqa: S608
            row = cursor.fetchone()
        seq, prev = row
        for entry in entries:
            seq += 1
            entry.seq = seq
            entry.prev_hash = prev
            entry.entry_hash = entry_digest(entry, prev)
            prev = entry.entry_hash
        cursor.execute(f"UPDATE {table} SET seq = %s, hash = %s, updated_at = %s WHERE id = 1",  # noqa: S608
                       [seq, prev, timezone.now()])


AUDIT_WORDING = ChainWording(
    name=lambda e: f"entry id={e.id} seq={e.seq}",
    before=lambda e: f"entry id={e.id}",
    end="the log ends",
    truncated_hint=" (entries removed at the end)",
)


def chain_verify(entries: Iterable[AuditEntry] | None = None) -> Iterator[ChainProblem]:
    """Yield every problem found, in chain order (the first one is the first bad entry)."""
    if entries is None:
        entries = AuditEntry.objects.order_by("seq").iterator(chunk_size=5000)
    return chain_verify_rows(
        entries, digest=entry_digest, head=ChainHead.objects.filter(pk=1).first(), wording=AUDIT_WORDING
    )
