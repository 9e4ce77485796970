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
    seq: int | None
    row_id: Any
    kind: str
    message: str


@dataclass(frozen=True)
class ChainWording:
    """How a chain names its rows in problem messages."""

    name: Callable[[Any], str]  # a row with its position, e.g. "entry id=7 seq=3"
    before: Callable[[Any], str]  # a row as the place a gap ends, e.g. "entry id=7"
    end: str  # e.g. "the log ends"
    truncated_hint: str = ""


def chain_verify_rows(
    rows: Iterable[Any], *, digest: Callable[[Any, str], str], head: Any | None, wording: ChainWording,
    start: tuple[int, str] = (0, GENESIS),
) -> Iterator[ChainProblem]:
    """Yield every problem in chain order: unsealed, missing, reordered, changed, truncated.

    ``start`` is an already verified ``(seq, hash)`` to continue from (incremental verification:
    pass only the rows after it).
    """
    expected, prev = start[0] + 1, start[1]
    for row in rows:
        if row.seq is None:
            yield ChainProblem(None, row.pk, "unsealed", f"{wording.before(row)} is not in the chain (inserted around it)")
            continue
        if row.seq != expected:
            if row.seq > expected:
                yield ChainProblem(
                    expected, row.pk, "missing",
                    f"seq {expected}–{row.seq - 1} missing before {wording.before(row)} (removed)",
                )
            expected = row.seq
        if row.prev_hash != prev:
            yield ChainProblem(
                row.seq, row.pk, "reordered",
                f"{wording.name(row)} does not follow its predecessor (removed or reordered)",
            )
        if digest(row, row.prev_hash) != row.entry_hash:
            yield ChainProblem(row.seq, row.pk, "changed", f"{wording.name(row)} was changed")
        prev = row.entry_hash
        expected += 1
    last = expected - 1
    if head is not None and (head.seq != last or head.hash != prev):
        yield ChainProblem(
            head.seq, None, "truncated",
            f"chain head says seq {head.seq} but {wording.end} at seq {last}{wording.truncated_hint}",
        )
