"""Scheduled verification of the hash chains, and signed chain heads exported outside the database.

The audit kernel knows only the audit chain. Other chains register a :class:`ChainVerifier` in
:data:`chains` from their ``AppConfig.ready()`` (the consent app registers its event chain with
the state-versus-events check), so this module never imports them.

A run (:func:`chains_verify`) continues each chain from the position the last clean run reached
(``full=True`` starts from the beginning), records a :class:`~audit.models_verification.VerificationRun`,
compares the database with the last exported heads, e-mails the DPO group when a break is found, and
when everything is clean appends the current heads to the export directory.

Accepting heads (``accept="<reason>"``, ``verify_chains --accept-heads``) is a clean restart point
after a restored backup: the run verifies every chain from its start; if the chains themselves are
intact, the exported heads they no longer extend (``truncated``/``changed``) are reported as
*accepted* instead of as problems, the current heads are appended with the reason, and the run is
recorded as clean, so the next incremental runs continue from the heads accepted. A chain with a
break of its own is never accepted over (the run fails and nothing is appended).

Exported heads go to a *head store* (:mod:`audit.head_stores`, chosen by
``MAMORU_CHAIN_HEADS_URL``): by default the directory ``MAMORU_CHAIN_HEADS_DIR`` (``var/chain-heads/``,
one JSON line per head and export in ``chain-heads-YYYY-MM.jsonl``, opened in append mode only), or
S3-compatible object storage (one new object per export, never overwritten, retention-locked when the
bucket has Object Lock). Each line is signed with an HMAC whose key is derived from
``MAMORU_PROOF_KEY``. Point the store at storage the database administrators cannot rewrite
(another host, a WORM mount, ``chattr +a``, a bucket with Object Lock): someone who removes the
newest rows of a chain *and* rolls its head row back is then caught, because the database no longer
holds the exported head. A store that cannot be read or written is a problem of the run (recorded
and alerted); no database transaction is held while it is contacted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from audit.head_stores import HeadStore, HeadStoreMisconfigured, HeadStoreUnavailable, head_store
from governance.hashchain import GENESIS, ChainProblem
from governance.registry import Registry

logger = logging.getLogger(__name__)
EXPORT_LABEL = b"mamoru-chain-head-export-v1"
MAX_STORED_PROBLEMS = 200


@dataclass(frozen=True)
class HeadPoint:
    """One chain head: ``key`` names it in exports (``consent``, ``audit:3`` for a partition)."""

    key: str
    position: int  # contiguous place in that chain (what ``hash_at`` looks up)
    seq: int  # global sequence number of the newest row
    hash: str
    time: dt.datetime | None = None

    def as_dict(self) -> dict:
        return {"key": self.key, "position": self.position, "seq": self.seq, "hash": self.hash,
                "time": self.time.isoformat() if self.time else None}


@dataclass
class ChainResult:
    """What a chain's verifier found: rows checked, every problem, where the next run continues."""

    checked: int
    problems: list[ChainProblem]
    position: dict  # JSON; passed back unchanged to the next incremental run


class ChainVerifier:
    """A chain the scheduled verification checks and whose heads it exports.

    Subclass, set ``identifier`` and register with ``chains.register`` from ``AppConfig.ready()``.
    """

    identifier = ""

    def verify(self, position: dict | None) -> ChainResult:
        """Verify from ``position`` (what the last clean run returned; None: from the start)."""
        raise NotImplementedError

    def heads(self) -> list[HeadPoint]:
        raise NotImplementedError

    def hash_at(self, key: str, position: int) -> str | None:
        """The stored ``entry_hash`` at ``position`` of the chain named ``key`` (None: no such row)."""
        raise NotImplementedError


class AuditChain(ChainVerifier):
    """The kernel's own chain: the audit log (one chain per partition)."""

    identifier = "audit"

    def verify(self, position: dict | None) -> ChainResult:
        from audit.chain import chain_heads, chain_verify

        start = {int(k): (v[0], v[1]) for k, v in (position or {}).items()}
        heads = chain_heads()  # taken first: rows sealed meanwhile are verified now and again next time
        problems = list(chain_verify(start=start))
        checked = sum(max(0, h.position - start.get(h.partition, (0, GENESIS))[0]) for h in heads)
        return ChainResult(checked=checked, problems=problems,
                           position={str(h.partition): [h.position, h.hash] for h in heads})

    def heads(self) -> list[HeadPoint]:
        from audit.chain import chain_heads

        return [HeadPoint(f"audit:{h.partition}", h.position, h.seq, h.hash, h.time) for h in chain_heads()]

    def hash_at(self, key: str, position: int) -> str | None:
        from audit.models import AuditEntry

        partition = int(key.split(":", 1)[1])
        return (AuditEntry.objects.filter(partition=partition, pseq=position)
                .values_list("entry_hash", flat=True).first())


chains: Registry[ChainVerifier] = Registry("chain", base=ChainVerifier, instantiate=True)
chains.register(AuditChain)


# --- exported heads ------------------------------------------------------------------------------


def heads_dir() -> Path:
    """The directory store's directory (``MAMORU_CHAIN_HEADS_DIR``; what ``file://`` URLs replace)."""
    configured = getattr(settings, "MAMORU_CHAIN_HEADS_DIR", "") or ""
    return Path(configured) if configured else Path(settings.VAR_DIR) / "chain-heads"


def _signature(record: dict) -> str:
    key = hmac.new(settings.MAMORU_PROOF_KEY.encode(), EXPORT_LABEL, hashlib.sha256).digest()
    body = json.dumps({k: v for k, v in record.items() if k != "sig"}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def heads_export(*, now: dt.datetime | None = None, accepted: str = "", store: HeadStore | None = None) -> list[dict]:
    """Append the current head of every registered chain (one signed JSON line each) to the store.

    ``accepted`` (a reason, e.g. "restored the 2026-11-30 backup, ticket 812") marks heads a person
    accepted although they do not extend the previous export; the newest line per head counts.
    The heads are read first (no transaction stays open); then the store is written
    (:class:`~audit.head_stores.HeadStoreUnavailable`, an ``OSError``, when it cannot be).
    """
    now = now or timezone.now()
    lines = []
    for name, chain in chains.items():
        for head in chain.heads():
            record = {"chain": name, **head.as_dict(), "exported_at": now.isoformat()}
            if accepted:
                record["accepted"] = accepted[:300]
            record["sig"] = _signature(record)
            lines.append(record)
    if not lines:
        return []
    store = store or head_store()
    text = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in lines)
    store.append(text, now=now, sequence=max(int(r["seq"] or 0) for r in lines))
    return lines


def heads_exported(*, store: HeadStore | None = None) -> tuple[dict[str, dict], list[ChainProblem]]:
    """The newest exported line per head key, and problems with the exports themselves.

    Raises ``OSError`` (:class:`~audit.head_stores.HeadStoreUnavailable`) when the store cannot be
    read and ``ValueError`` when ``MAMORU_CHAIN_HEADS_URL`` is wrong.
    """
    found: dict[str, dict] = {}
    problems: list[ChainProblem] = []
    store = store or head_store()
    for document in store.documents():
        for number, line in enumerate(document.text.splitlines(), 1):
            try:
                record = json.loads(line)
                valid = hmac.compare_digest(str(record.get("sig", "")), _signature(record))
            except (ValueError, AttributeError, TypeError):
                valid, record = False, {}
            if not valid:
                problems.append(ChainProblem(None, None, "export_signature",
                                             f"{document.name} line {number} is not a valid signed head"))
                continue
            if document.stamp is not None and _exported_at(record) != document.stamp:
                # a valid old export copied under a newer name must not pass for the newest heads
                problems.append(ChainProblem(None, None, "export_signature",
                                             f"{document.name} line {number} was exported at "
                                             f"{record.get('exported_at')}, not at the time its name states"))
                continue
            found[record["key"]] = record
    return found, problems


def _exported_at(record: dict) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(record.get("exported_at"))).astimezone(dt.UTC)
    except (TypeError, ValueError):
        return None


def _store_problem(kind: str, action: str, store: HeadStore | None, exc: Exception) -> ChainProblem:
    where = store.describe() if store is not None else "the configured head store"
    reason = str(exc) if isinstance(exc, HeadStoreUnavailable | HeadStoreMisconfigured) else type(exc).__name__
    return ChainProblem(None, None, kind, f"the heads could not be {action} {where}: {reason}")


def heads_compare(*, exported: dict[str, dict] | None = None) -> list[ChainProblem]:
    """Problems where the database no longer holds a head that was exported (tail removed)."""
    problems: list[ChainProblem] = []
    if exported is None:
        exported, problems = heads_exported()
    return problems + [problem for _chain, problem in _heads_compare(exported)]


def _heads_compare(exported: dict[str, dict]) -> list[tuple[str, ChainProblem]]:
    """``(chain name, problem)`` per exported head the database no longer holds as exported."""
    problems: list[tuple[str, ChainProblem]] = []
    known = dict(chains.items())
    for key, record in sorted(exported.items()):
        chain = known.get(record.get("chain"))
        if chain is None:
            continue
        stored = chain.hash_at(key, int(record["position"]))
        if stored is None:
            problems.append((record["chain"], ChainProblem(
                int(record["position"]), None, "truncated",
                f"{key}: the head exported at {record['exported_at']} (position {record['position']}, "
                f"seq {record['seq']}) is no longer in the database: rows were removed at the end",
            )))
        elif not hmac.compare_digest(stored, record["hash"]):
            problems.append((record["chain"], ChainProblem(
                int(record["position"]), None, "changed",
                f"{key}: the row at position {record['position']} differs from the head exported at "
                f"{record['exported_at']}",
            )))
    return problems


# --- runs ----------------------------------------------------------------------------------------


@contextmanager
def snapshot(using: str = DEFAULT_DB_ALIAS):
    """One consistent view of the database for a whole verification.

    Writers keep working meanwhile; without a snapshot, a row sealed between reading the head and
    reading the rows (or a state written between folding the events and reading the states) would
    be reported as a break. PostgreSQL gets ``REPEATABLE READ, READ ONLY``; SQLite's read
    transaction and MariaDB's default isolation are snapshots already. Inside an outer transaction
    (tests) that transaction's view is used.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


@dataclass
class RunSummary:
    run: object
    problems: list[tuple[str, ChainProblem]] = field(default_factory=list)
    # With accept=: the exported heads the accepted ones replace, and whether the heads were appended.
    accepted: list[tuple[str, ChainProblem]] = field(default_factory=list)
    accept_written: bool = False


def _last_positions() -> dict[str, dict]:
    from audit.models_verification import VerificationRun

    positions: dict[str, dict] = {}
    for run in VerificationRun.objects.order_by("-started_at")[:50]:
        for name, info in (run.chains or {}).items():
            if name not in positions and info.get("ok") and info.get("position") is not None:
                positions[name] = info["position"]
    return positions


def chains_verify(*, full: bool = False, export: bool = True, notify: bool = True, accept: str = "") -> RunSummary:
    """Verify every registered chain (incrementally unless ``full``), record the run, compare with
    the exported heads, alert the DPO group on a break, export the heads when all is clean.

    ``accept`` (a reason): accept the current heads as a restart point (after restoring a backup):
    every chain is verified from its start; if they are intact, exported heads they no longer
    extend are listed in ``summary.accepted`` instead of as problems, the heads are appended with
    the reason, and the next incremental runs continue from here.
    """
    from audit.models_verification import VerificationRun

    accept = (accept or "").strip()[:300]
    full = full or bool(accept)  # a restart point: positions from before a restore mean nothing
    started = timezone.now()
    positions = {} if full else _last_positions()
    chains_info: dict[str, dict] = {}
    found: list[tuple[str, ChainProblem]] = []
    checked = 0
    for name, chain in chains.items():
        try:
            with snapshot():
                result = chain.verify(positions.get(name))
        except Exception as exc:  # noqa: BLE001 - one failing verifier must not hide the others
            logger.exception("verification of chain %s failed", name)
            result = ChainResult(0, [ChainProblem(None, None, "error", f"verification failed: {type(exc).__name__}")],
                                 position=positions.get(name))
        checked += result.checked
        found += [(name, p) for p in result.problems]
        chains_info[name] = {"checked": result.checked, "problems": len(result.problems),
                             "ok": not result.problems, "position": result.position if not result.problems else None,
                             "from": positions.get(name)}
    accepting = bool(accept) and not found  # never accept heads over a chain broken in itself
    store: HeadStore | None = None
    try:  # network or file I/O: outside every transaction (and before the run is written)
        store = head_store()
        exported, export_problems = heads_exported(store=store)
    except (OSError, ValueError) as exc:  # the protection against truncation is off: say so like a break
        logger.exception("could not read the exported chain heads")
        exported, export_problems = {}, [_store_problem("export_unreadable", "read from", store, exc)]
    with snapshot():
        compared = _heads_compare(exported)
    accepted = compared if accepting else []
    found += [("exports", p) for p in export_problems] + ([] if accepting else [("exports", p) for _c, p in compared])
    for name, info in chains_info.items():
        if accepting:
            info["accepted"] = {"reason": accept, "replaced": [p.message for c, p in accepted if c == name]}
    ok = not found
    run = VerificationRun.objects.create(
        started_at=started, finished_at=timezone.now(), full=full or not positions, ok=ok, checked=checked,
        problem_count=len(found), chains=chains_info,
        problems=[{"chain": c, "seq": p.seq, "kind": p.kind, "message": p.message,
                   "partition": getattr(p, "partition", None)} for c, p in found[:MAX_STORED_PROBLEMS]],
    )
    written = False
    if accepting or (ok and export):
        try:
            if store is None:
                store = head_store()
            heads_export(accepted=accept if accepting else "", store=store)
            written = True
            if accepting:
                logger.warning("chain heads accepted (%d exported head(s) replaced): %s", len(accepted), accept)
        except (OSError, ValueError) as exc:  # the protection against truncation is off: say so like a break
            logger.exception("could not export the chain heads")
            problem = _store_problem("export_failed", "written to", store, exc)
            found.append(("exports", problem))
            run.ok, run.problem_count = False, len(found)
            run.problems = [*run.problems, {"chain": "exports", "seq": None, "kind": problem.kind,
                                            "message": problem.message, "partition": None}]
            if accepting:  # nothing was accepted: the next run must not continue from here
                for info in run.chains.values():
                    info.pop("accepted", None)
                    info["ok"], info["position"] = False, None
            run.save(update_fields=["ok", "problem_count", "problems", "chains"])
            ok = False
    if not ok and notify:
        run_notify(run=run)
    return RunSummary(run=run, problems=found, accepted=accepted if accepting and written else [],
                      accept_written=accepting and written)


_alert_recipients: list = []


def alert_recipients_register(source) -> None:
    """Who hears about a break: ``source()`` returns e-mail addresses. The access app registers
    the DPO role from its ``ready()`` (the kernel knows no roles). Without one, superusers."""
    if source not in _alert_recipients:
        _alert_recipients.append(source)


def alert_recipients() -> list[str]:
    if _alert_recipients:
        return sorted({address for source in _alert_recipients for address in source()})
    users = get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(email="")
    return sorted({u.email for u in users})


def run_notify(*, run) -> int:
    """E-mail the DPO group about a run that found a break (chain names and kinds, never data)."""
    from django.core.mail import send_mail

    from audit.models_verification import VerificationRun

    previous = VerificationRun.objects.filter(started_at__lt=run.started_at).order_by("-started_at").first()
    if previous is not None and not previous.ok and previous.problems == run.problems and previous.notified_at:
        return 0  # the same break, already reported
    recipients = alert_recipients()
    if not recipients:
        return 0
    with translation.override(settings.LANGUAGE_CODE):
        subject = gettext("[Mamoru] Chain verification found %(n)d problem(s)") % {"n": run.problem_count}
        lines = [f"{p['chain']}: {p['kind']}: {p['message']}" for p in run.problems[:50]]
        body = (gettext("The scheduled verification of the evidence chains found a break.") + "\n\n"
                + "\n".join(lines) + "\n\n"
                + gettext("Run `manage.py verify_chains --full` and compare with the exported heads; see docs/security.md."))
    try:
        send_mail(subject, body, None, recipients)
    except Exception:  # noqa: BLE001 - the run is recorded either way
        logger.exception("could not e-mail the chain verification alert")
        return 0
    type(run).objects.filter(pk=run.pk).update(notified_at=timezone.now())
    return len(recipients)


def last_run():
    from audit.models_verification import VerificationRun

    return VerificationRun.objects.order_by("-started_at").first()
