"""The hash chain over audit entries.

Each entry's ``entry_hash`` is HMAC-SHA256 (key derived from ``MAMORU_PROOF_KEY``) over the previous
hash and a canonical JSON of the entry. Sequence numbers are contiguous. A changed entry breaks its
own hash, a removed one leaves a gap, a reordered pair breaks ``prev_hash``; without the key the
chain cannot be recomputed after tampering.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit.models import AuditEntry, ChainHead

GENESIS = "0" * 64


@lru_cache(maxsize=2)
def _key(spec: str) -> bytes:
    return hmac.new(spec.encode(), b"mamoru-audit-chain-v1", hashlib.sha256).digest()


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
    return hmac.new(
        _key(settings.MAMORU_PROOF_KEY), prev_hash.encode() + b"\x00" + _canonical(entry), hashlib.sha256
    ).hexdigest()


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


@dataclass
class ChainProblem:
    seq: int | None
    entry_id: int | None
    kind: str
    message: str


def chain_verify(entries: Iterable[AuditEntry] | None = None) -> Iterator[ChainProblem]:
    """Yield every problem found, in chain order (the first one is the first bad entry)."""
    if entries is None:
        entries = AuditEntry.objects.order_by("seq").iterator(chunk_size=5000)
    expected_seq, prev = 1, GENESIS
    for entry in entries:
        if entry.seq is None:
            yield ChainProblem(None, entry.id, "unsealed", f"entry id={entry.id} is not in the chain (inserted around it)")
            continue
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                yield ChainProblem(
                    expected_seq, entry.id, "missing",
                    f"seq {expected_seq}–{entry.seq - 1} missing before entry id={entry.id} (removed)",
                )
            expected_seq = entry.seq
        if entry.prev_hash != prev:
            yield ChainProblem(
                entry.seq, entry.id, "reordered",
                f"entry id={entry.id} seq={entry.seq} does not follow its predecessor (removed or reordered)",
            )
        if entry_digest(entry, entry.prev_hash) != entry.entry_hash:
            yield ChainProblem(
                entry.seq, entry.id, "changed", f"entry id={entry.id} seq={entry.seq} was changed"
            )
        prev = entry.entry_hash
        expected_seq += 1
    head = ChainHead.objects.filter(pk=1).first()
    last_seq = expected_seq - 1
    if head is not None and (head.seq != last_seq or head.hash != prev):
        yield ChainProblem(
            head.seq, None, "truncated",
            f"chain head says seq {head.seq} but the log ends at seq {last_seq} (entries removed at the end)",
        )
