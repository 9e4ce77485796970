"""The hash chain over audit entries: partitioned, sealed as stored, verified completely.

Public API (stable; used by ``verify_audit``, the scheduled verification and the dashboard):

    chain_seal(entries, *, using=None) -> None
        Give unsaved entries their place (partition, pseq, seq) and hashes, inside the caller's
        transaction; the caller inserts them unchanged in that transaction.
    chain_verify(entries=None, *, start=None) -> Iterator[governance.hashchain.ChainProblem]
        Every problem of every partition chain (``problem.partition``, ``problem.seq`` = position
        in that partition; the message names the entry's global ``seq``). ``start`` maps a
        partition to its last verified ``(pseq, hash)`` to continue an earlier run.
    chain_heads() -> list[Head]      one per partition: partition, seq (global), position, hash, time
    chain_head() -> Head | None      the newest head overall (highest global seq)
    chain_partitions(connection) -> int   partitions new entries are spread over

Construction. ``entry_hash = HMAC-SHA256(k, prev_hash || 0x00 || payload)`` (governance.hashchain),
``k`` derived from ``MAMORU_PROOF_KEY``. Version 2 (``chain_version = 2``) hashes a canonical JSON of
every concrete column of the row except ``id``, ``prev_hash`` and ``entry_hash`` (``SEALED_FIELDS``
is derived from the model, so a new column is covered without anyone remembering it). Version 1
rows (written before 2026-12) keep their old, narrower payload and are verified with it.

Partitions. ``ChainHead`` rows 1..P are independent chains; a writer locks any free one (``FOR
UPDATE SKIP LOCKED`` on PostgreSQL), so concurrent writers do not queue on a single row. Each
entry records its partition and its contiguous position ``pseq`` there. ``seq`` is the global
order: taken from a PostgreSQL sequence while the partition is locked, so it is unique and
increases along every partition chain (gaps are allowed: a rolled-back transaction consumes a
number). On SQLite and MariaDB there is one partition and ``seq`` is contiguous.
See docs/architecture.md ("The audit chain") for what is guaranteed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.utils import timezone

from audit.models import CHAIN_FIELDS, CHAIN_VERSION, AuditEntry, ChainHead
from governance.hashchain import (
    GENESIS,
    ChainProblem,
    ChainWording,
    chain_digest,
    chain_verify_rows,
)

LABELS = {1: b"mamoru-audit-chain-v1", 2: b"mamoru-audit-chain-v2"}
SEQUENCE = "audit_auditentry_gseq"  # PostgreSQL sequence of the global order (migration 0006)

# --- Canonical form ------------------------------------------------------------------------------

SEALED_FIELDS: tuple[models.Field, ...] = tuple(
    f for f in AuditEntry._meta.concrete_fields if f.name not in CHAIN_FIELDS
)


def _canon_ip(value) -> str:
    try:
        return ipaddress.ip_address(str(value)).exploded
    except ValueError:
        return str(value)


def _canon_time(value) -> str:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _canonizer(field: models.Field):
    if isinstance(field, models.GenericIPAddressField):
        return _canon_ip
    if isinstance(field, models.JSONField):
        return lambda value: value
    if isinstance(field, models.DateTimeField):
        return _canon_time
    target = field.target_field if field.is_relation else field
    if isinstance(target, (models.IntegerField, models.AutoField)):
        return int
    if isinstance(target, models.BooleanField):
        return bool
    return str


_CANON = tuple((f.attname, _canonizer(f)) for f in SEALED_FIELDS)


def _canonical_v2(entry: AuditEntry) -> bytes:
    payload = {}
    for attname, canon in _CANON:
        value = getattr(entry, attname)
        payload[attname] = None if value is None else canon(value)
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _canonical_v1(entry: AuditEntry) -> bytes:
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


_CANONICAL = {1: _canonical_v1, 2: _canonical_v2}


def entry_digest(entry: AuditEntry, prev_hash: str) -> str:
    canonical = _CANONICAL.get(entry.chain_version)
    if canonical is None:
        return ""  # an unknown version never verifies
    return chain_digest(label=LABELS[entry.chain_version], prev_hash=prev_hash, payload=canonical(entry))


def _normalise(entry: AuditEntry) -> None:
    """Store client-supplied values in a form the database keeps as it is (or not at all).

    ``remote_addr`` may come from ``X-Forwarded-For`` and ``remote_port`` from
    ``X-Forwarded-Port``: an unparsable address or an out-of-range port is dropped rather than
    failing the request (or being rewritten by the database after sealing).
    """
    addr = entry.remote_addr
    if addr is not None:
        try:
            entry.remote_addr = str(ipaddress.ip_address(str(addr).strip()))
        except ValueError:
            entry.remote_addr = None
    port = entry.remote_port
    if port is not None:
        try:
            port = int(port)
        except (TypeError, ValueError):
            port = None
        entry.remote_port = port if port is not None and 0 <= port <= 65535 else None
    if entry.timestamp is None:
        entry.timestamp = timezone.now()


# --- Sealing -------------------------------------------------------------------------------------


def chain_partitions(connection) -> int:
    """Partition chains new entries are spread over: ``MAMORU_AUDIT_CHAIN_PARTITIONS`` (default
    8) on PostgreSQL; 1 elsewhere (SQLite serialises writers anyway; no sequence on MariaDB)."""
    if connection.vendor != "postgresql":
        return 1
    return max(1, min(int(getattr(settings, "MAMORU_AUDIT_CHAIN_PARTITIONS", 0) or 8), 1000))


_HEADS = None


def _head_table(connection) -> str:
    global _HEADS
    if _HEADS is None:
        _HEADS = connection.ops.quote_name(ChainHead._meta.db_table)
    return _HEADS


def _heads_create(connection, partitions: int) -> None:
    ChainHead.objects.using(connection.alias).bulk_create(
        [ChainHead(id=p) for p in range(1, partitions + 1)], ignore_conflicts=True
    )


def _lock_postgresql(cursor, connection, count: int, prefix: str = "") -> tuple[int, int, str, list[int]]:
    table = _head_table(connection)
    partitions = chain_partitions(connection)
    preferred = os.getpid() % partitions  # each process starts at its own partition
    # One round trip: lock any free head (skipping the ones other writers hold), then draw the
    # global numbers while it is held, so they increase along the partition chain.
    cursor.execute(
        f"{prefix}WITH h AS MATERIALIZED (SELECT id, seq, hash FROM {table} WHERE id BETWEEN 1 AND %s "  # noqa: S608
        f"ORDER BY (id - 1 + %s) %% %s LIMIT 1 FOR UPDATE SKIP LOCKED) "
        f"SELECT h.id, h.seq, h.hash, nextval('{SEQUENCE}') FROM h, generate_series(1, %s)",
        [partitions, partitions - preferred, partitions, count],
    )
    while prefix and cursor.description is None and cursor.nextset():
        pass  # skip the results of the prefixed statements (BEGIN, SET LOCAL)
    rows = cursor.fetchall()
    if not rows:
        # Every head is busy (or not created yet): wait for our own. Created on this cursor, in the
        # caller's transaction: the read path sent its own BEGIN, which Django does not know about,
        # so the ORM (which would open an atomic block) must not touch this connection here.
        cursor.execute(
            f"INSERT INTO {table} (id, seq, hash, last_seq, updated_at) "  # noqa: S608
            "SELECT g, 0, %s, 0, now() FROM generate_series(1, %s) AS g ON CONFLICT (id) DO NOTHING",
            [GENESIS, partitions],
        )
        cursor.execute(f"SELECT id, seq, hash FROM {table} WHERE id = %s FOR UPDATE", [preferred + 1])  # noqa: S608
        part, pseq, prev = cursor.fetchone()
        cursor.execute(f"SELECT nextval('{SEQUENCE}') FROM generate_series(1, %s)", [count])  # noqa: S608 - constant
        seqs = [r[0] for r in cursor.fetchall()]
    else:
        part, pseq, prev = rows[0][:3]
        seqs = [r[3] for r in rows]
    return part, pseq, prev, sorted(seqs)


def _lock_single(cursor, connection, count: int, prefix: str = "") -> tuple[int, int, str, list[int]]:
    table = _head_table(connection)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    cursor.execute(f"SELECT seq, hash FROM {table} WHERE id = 1{lock}")  # noqa: S608 - constant
    row = cursor.fetchone()
    if row is None:
        _heads_create(connection, 1)
        cursor.execute(f"SELECT seq, hash FROM {table} WHERE id = 1{lock}")  # noqa: S608
        row = cursor.fetchone()
    # One partition: its lock (or SQLite's database write lock) serialises every writer.
    entries = connection.ops.quote_name(AuditEntry._meta.db_table)
    cursor.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {entries}")  # noqa: S608
    top = cursor.fetchone()[0]
    return 1, row[0], row[1], list(range(top + 1, top + count + 1))


def chain_seal(entries: list[AuditEntry], *, using: str | None = None,
               defer_head: bool = False) -> tuple[str, list] | None:
    """Give unsaved entries their chain place and hashes; the caller inserts them, unchanged, in
    the same transaction. Locks one partition head (any free one on PostgreSQL) until commit.

    With ``defer_head`` the head's UPDATE is returned as ``(sql, params)`` instead of executed, for
    the caller to run in the same transaction (the read path folds it into its INSERT)."""
    if not entries:
        return None
    connection = connections[using or DEFAULT_DB_ALIAS]
    if not connection.in_atomic_block:
        raise RuntimeError("chain_seal must run inside the transaction that saves the entries")
    with connection.cursor() as cursor:
        update = chain_seal_with(cursor, entries, connection=connection)
        if defer_head:
            return update
        cursor.execute(*update)
    return None


def chain_seal_with(cursor, entries: list[AuditEntry], *, connection, prefix: str = "") -> tuple[str, list]:
    """Seal ``entries`` on ``cursor`` (whose transaction the caller owns) and return the head's
    UPDATE for the caller to run. ``prefix`` (PostgreSQL, client-side binding) is sent in the
    same round trip as the head lock, e.g. ``"BEGIN; "``."""
    for entry in entries:
        if entry.entry_hash:
            raise ValueError("entry is already sealed")
        _normalise(entry)
    lock = _lock_postgresql if connection.vendor == "postgresql" else _lock_single
    part, pseq, prev, seqs = lock(cursor, connection, len(entries), prefix)
    for entry, seq in zip(entries, seqs, strict=True):
        pseq += 1
        entry.partition, entry.pseq, entry.seq = part, pseq, seq
        entry.chain_version = CHAIN_VERSION
        entry.prev_hash = prev
        entry.entry_hash = entry_digest(entry, prev)
        prev = entry.entry_hash
    return (
        f"UPDATE {_head_table(connection)} SET seq = %s, hash = %s, last_seq = %s, updated_at = %s "  # noqa: S608
        "WHERE id = %s",
        [pseq, prev, seqs[-1], timezone.now(), part],
    )


# --- The read path's one-statement fast path (PostgreSQL) ----------------------------------------
#
# A read's entry normally costs two round trips: lock a free head (and draw the global number),
# then move the head, insert and commit. A connection that has just written an entry already
# knows its partition's head (it wrote it) and drew the global number for its next entry while it
# still held that head's lock (``RETURNING …, nextval``). With that, the next entry is sealed
# before anything is sent, and one autocommitted statement moves the head *only if it is still
# where this connection left it* and inserts the entry:
#
#     WITH head AS (UPDATE heads SET … WHERE id = p AND seq = known_pseq AND hash = known_hash
#                   [and nobody holds it: FOR UPDATE SKIP LOCKED] RETURNING id)
#     INSERT INTO entries (…, partition, …) VALUES (…, (SELECT id FROM head), …)
#     RETURNING id, nextval(global sequence)
#
# If another writer moved that head in between, the UPDATE matches nothing, ``partition`` is NULL
# and the NOT NULL constraint refuses the row (``IntegrityError``): nothing is written and the
# caller seals again on the locking path. The reserved number is unique (drawn from the sequence)
# and larger than every number already in that partition (drawn under its lock after them), so the
# chain's rules hold unchanged. It is only used while fresh (``FAST_PATH_MAX_AGE``): a reserved
# number drawn long ago would sort the entry far before its time in the global order.

FAST_PATH_MAX_AGE = 1.0  # seconds


@dataclass
class ReservedPlace:
    """Where this connection's next entry goes if nobody else writes to the partition first."""

    partition: int
    pseq: int  # position of the connection's last entry in the partition
    hash: str
    seq: int  # global number drawn for the next entry, under the partition's lock
    drawn_at: float  # time.monotonic()


def reserved_place(connection) -> ReservedPlace | None:
    place = getattr(connection, "_mamoru_audit_place", None)
    if place is None or time.monotonic() - place.drawn_at > FAST_PATH_MAX_AGE:
        return None
    return place


def reserved_place_set(connection, place: ReservedPlace | None) -> None:
    connection._mamoru_audit_place = place


def chain_seal_reserved(entry: AuditEntry, *, connection, place: ReservedPlace) -> tuple[str, list]:
    """Seal ``entry`` at ``place`` without a lock; return the guarded head UPDATE (``head`` CTE)
    whose ``RETURNING id`` the INSERT must use as the entry's ``partition``."""
    if entry.entry_hash:
        raise ValueError("entry is already sealed")
    _normalise(entry)
    entry.partition, entry.pseq, entry.seq = place.partition, place.pseq + 1, place.seq
    entry.chain_version = CHAIN_VERSION
    entry.prev_hash = place.hash
    entry.entry_hash = entry_digest(entry, place.hash)
    table = _head_table(connection)
    # SKIP LOCKED: a head another writer holds is treated like a moved one (this writer never
    # waits for another's partition; it seals again on a free one).
    return (
        f"UPDATE {table} SET seq = %s, hash = %s, last_seq = %s, updated_at = %s WHERE id = ("  # noqa: S608
        f"SELECT id FROM {table} WHERE id = %s AND seq = %s AND hash = %s FOR UPDATE SKIP LOCKED) RETURNING id",
        [entry.pseq, entry.entry_hash, entry.seq, timezone.now(), place.partition, place.pseq, place.hash],
    )


def chain_unseal(entry: AuditEntry) -> None:
    """Forget a seal that was never stored (its statement failed), so the entry can be sealed again."""
    entry.partition, entry.pseq, entry.seq, entry.prev_hash, entry.entry_hash = 1, None, None, "", ""


# --- Heads and verification ----------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    partition: int
    seq: int  # global seq of the partition's newest entry
    position: int  # its pseq
    hash: str
    time: dt.datetime | None

    def as_dict(self) -> dict:
        return {"partition": self.partition, "seq": self.seq, "position": self.position, "hash": self.hash,
                "time": self.time.isoformat() if self.time else None}


def chain_heads() -> list[Head]:
    return [
        Head(h.id, h.last_seq, h.seq, h.hash, h.updated_at)
        for h in ChainHead.objects.order_by("id")
        if h.seq or h.last_seq
    ]


def chain_head() -> Head | None:
    heads = chain_heads()
    return max(heads, key=lambda h: h.seq) if heads else None


AUDIT_WORDING = ChainWording(
    name=lambda e: f"entry id={e.id} seq={e.seq}",
    before=lambda e: f"entry id={e.id} seq={e.seq}",
    end="the partition ends",
    truncated_hint=" (entries removed at the end)",
    position="position",
)


def _order_check(row: AuditEntry, previous: AuditEntry | None) -> Iterator[ChainProblem]:
    """Along a partition chain the global seq strictly increases."""
    if previous is not None and previous.seq is not None and row.seq is not None and row.seq <= previous.seq:
        yield ChainProblem(
            row.pseq, row.pk, "reordered",
            f"entry id={row.id} seq={row.seq} comes after seq={previous.seq} in partition {row.partition}",
            row.partition,
        )


def _verify_partition(rows, part, head, start) -> Iterator[ChainProblem]:
    wording = ChainWording(
        name=AUDIT_WORDING.name, before=lambda e: f"entry id={e.id} seq={e.seq} (partition {part})",
        end=f"partition {part} ends", truncated_hint=AUDIT_WORDING.truncated_hint, position="position",
    )
    yield from chain_verify_rows(
        rows, digest=entry_digest, head=head, wording=wording, start=start,
        position=lambda e: e.pseq, partition=part, check=_order_check,
    )


def _beyond_head(part: int) -> Iterator[ChainProblem]:
    """Entries past the partition's head as it is now: never sealed by this chain (a forged tail)."""
    head = ChainHead.objects.filter(pk=part).first()
    for entry in AuditEntry.objects.filter(partition=part, pseq__gt=head.seq if head else 0).order_by("pseq"):
        yield ChainProblem(entry.pseq, entry.pk, "unsealed",
                           f"entry id={entry.id} seq={entry.seq} lies beyond the head of partition {part} "
                           "(inserted, not sealed by the chain)", part)
        if entry_digest(entry, entry.prev_hash) != entry.entry_hash:
            yield ChainProblem(entry.pseq, entry.pk, "changed", f"entry id={entry.id} seq={entry.seq} was changed", part)


def chain_verify(
    entries: Iterable[AuditEntry] | None = None, *, start: dict[int, tuple[int, str]] | None = None
) -> Iterator[ChainProblem]:
    """Yield every problem of every partition chain (partition by partition, in chain order),
    then entries that belong to no chain (inserted without being sealed)."""
    start = start or {}
    heads = {h.id: h for h in ChainHead.objects.all()}
    if entries is not None:
        sealed = sorted((e for e in entries if e.pseq is not None), key=lambda e: (e.partition, e.pseq))
        unsealed = [e for e in entries if e.pseq is None]
        groups = {part: list(rows) for part, rows in groupby(sealed, key=lambda e: e.partition)}
        parts = sorted(set(groups) | {p for p, h in heads.items() if h.seq})
    else:
        unsealed = AuditEntry.objects.filter(pseq__isnull=True).order_by("id").iterator(chunk_size=2000)
        if start:
            # Incremental run: the partitions with a head (a full run also finds head-less ones).
            stored = set(start)
        else:
            stored = set(AuditEntry.objects.order_by().values_list("partition", flat=True).distinct())
        parts = sorted(stored | {p for p, h in heads.items() if h.seq})
        groups = None
    for part in parts:
        begin = start.get(part, (0, GENESIS))
        head = heads.get(part)
        if head is None:
            yield ChainProblem(None, None, "truncated",
                               f"partition {part} has entries but no chain head (head removed)", part)
        if groups is not None:
            yield from _verify_partition([e for e in groups.get(part, []) if e.pseq > begin[0]], part, head, begin)
            continue
        # Up to the head as read above: entries sealed while this runs are left for the next run.
        rows = AuditEntry.objects.filter(partition=part, pseq__gt=begin[0])
        if head is not None:
            rows = rows.filter(pseq__lte=head.seq)
        yield from _verify_partition(rows.order_by("pseq").iterator(chunk_size=5000), part, head, begin)
        if head is not None:
            yield from _beyond_head(part)
    for entry in unsealed:
        yield ChainProblem(None, entry.pk, "unsealed",
                           f"entry id={entry.id} is not in the chain (inserted without a seal)", entry.partition)
