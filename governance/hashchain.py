"""Keyed hash chains: the one construction behind the audit log and the consent journal.

``entry_hash = HMAC-SHA256(k, prev_hash || 0x00 || canonical payload)``, with ``k`` derived from
``MAMORU_PROOF_KEY`` and a per-chain label, sequence numbers contiguous from 1, and a head row
holding the newest ``(seq, hash)``. Each chain supplies its canonical payload, its sealing (which
locks its own head row) and the words its messages use; verification is shared here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings

GENESIS = "0" * 64


@lru_cache(maxsize=8)
def _key(secret: str, label: bytes) -> bytes:
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


def chain_digest(*, label: bytes, prev_hash: str, payload: bytes) -> str:
    """The keyed link of one row to its predecessor."""
    key = _key(settings.MAMORU_PROOF_KEY, label)
    return hmac.new(key, prev_hash.encode() + b"\x00" + payload, hashlib.sha256).hexdigest()


@dataclass
class ChainProblem:
    seq: int | None  # the row's position in its chain (a partition's position for the audit log)
    row_id: Any
    kind: str
    message: str
    partition: int | None = None  # the audit log's partition chain; None for single chains


@dataclass(frozen=True)
class ChainWording:
    """How a chain names its rows in problem messages."""

    name: Callable[[Any], str]  # a row with its position, e.g. "entry id=7 seq=3"
    before: Callable[[Any], str]  # a row as the place a gap ends, e.g. "entry id=7"
    end: str  # e.g. "the log ends"
    truncated_hint: str = ""
    position: str = "seq"  # what the row's place in the chain is called in messages


def chain_verify_rows(
    rows: Iterable[Any], *, digest: Callable[[Any, str], str], head: Any | None, wording: ChainWording,
    start: tuple[int, str] = (0, GENESIS), position: Callable[[Any], int | None] | None = None,
    partition: int | None = None, check: Callable[[Any, Any | None], Iterable[ChainProblem]] | None = None,
) -> Iterator[ChainProblem]:
    """Yield every problem in chain order: unsealed, missing, reordered, changed, truncated.

    ``start`` is the last verified ``(position, hash)`` (incremental runs); ``position`` reads a
    row's place (default ``row.seq``); ``partition`` is stamped on each problem; ``check(row,
    previous)`` may yield further problems of the chain's own (e.g. order across partitions).
    """
    place = position or (lambda row: row.seq)
    word = wording.position
    expected, prev = start[0] + 1, start[1]
    previous = None

    def problem(seq, row_id, kind, message):
        return ChainProblem(seq, row_id, kind, message, partition)

    for row in rows:
        at = place(row)
        if at is None:
            yield problem(None, row.pk, "unsealed", f"{wording.before(row)} is not in the chain (inserted around it)")
            continue
        if at != expected:
            if at > expected:
                yield problem(
                    expected, row.pk, "missing",
                    f"{word} {expected}–{at - 1} missing before {wording.before(row)} (removed)",
                )
            expected = at
        if row.prev_hash != prev:
            yield problem(
                at, row.pk, "reordered",
                f"{wording.name(row)} does not follow its predecessor (removed or reordered)",
            )
        if digest(row, row.prev_hash) != row.entry_hash:
            yield problem(at, row.pk, "changed", f"{wording.name(row)} was changed")
        if check is not None:
            yield from check(row, previous)
        previous = row
        prev = row.entry_hash
        expected += 1
    last = expected - 1
    if head is not None and (head.seq != last or head.hash != prev):
        yield problem(
            head.seq, None, "truncated",
            f"chain head says {word} {head.seq} but {wording.end} at {word} {last}{wording.truncated_hint}",
        )
