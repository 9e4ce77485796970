"""Plan and run a request: one persisted task row per graph node and phase.

- The plan snapshots the data map into the request (``request.plan``), so a reload mid-request
  changes nothing — until staff *retry* a request that needs attention: the retry re-plans with
  the data map as it is then (:func:`plan_refresh`). Every data-map version a request ran with is
  recorded (``plan["versions"]``, and a timeline event each).
- A node is claimed in a transaction (status + lease). While it runs, a heartbeat renews the
  lease (``MAMORU_DSR_HEARTBEAT_SECONDS``, default 10 s) for ``MAMORU_DSR_LEASE_SECONDS`` (30 s).
  A node whose lease expired belongs to a dead worker: the watchdog (every 15 s) requeues it, and
  a redelivered message takes it over directly. Its result goes to an encrypted file; the row is
  finished only by the run holding the lease. Running a node twice gives the same effect: access
  rewrites its file, erasure computes new values from the originals read in the access phase, and
  a delete of a missing row counts as done.
- A store that is down raises ``StoreUnavailable``: the node waits (``retry_wait``) with
  exponential backoff up to the store's budget, then fails. A failed node blocks only the nodes
  that depend on it; every other node keeps running. The request needs attention once nothing
  more can run, with the reasons in ``attention_reason``, and the DPOs are e-mailed.
- Verification re-reads by primary key every row the access phase found and checks that each
  personal field that is not retained holds what the erasure planned for it (NULL, or the value
  computed again from the original), comparing keyed hashes (captured during access or computed in
  memory; never stored values); an e-mail or phone written differently is still itself. It also
  searches again by every identity. Anything left fails the node; a retry then runs that node's
  erasure again before verifying.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
import traceback
import unicodedata
import uuid
from collections import defaultdict
from dataclasses import asdict
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from dsr import files
from dsr.connectors import StoreError, StoreUnavailable, connector_class
from dsr.masking import RowPlan, row_plan, strategy_get
from dsr.models import (
    CONSENT_TYPES,
    DataSubjectRequest,
    RequestEvent,
    RequestStatus,
    RequestTask,
    RequestType,
    TaskPhase,
    TaskStatus,
)
from dsr.values import json_default
from governance.datamap.graph import DataMapGraph
from governance.datamap.spec import CollectionSpec, FieldSpec, StoreSpec
from governance.datamap.taxonomy import category_is_personal
from governance.locking import lock_rows
from governance.subjects.identities import email_fold, phone_fold

logger = logging.getLogger(__name__)

_inline_queue: contextvars.ContextVar[list | None] = contextvars.ContextVar("dsr_inline_queue", default=None)

ERR_LEFTOVER = "identifying data is still present"
ACTIVE = {TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.RETRY_WAIT}
# Identity kinds whose values identify a person outside our systems: never shown as a row key.
PERSONAL_IDENTITY_KINDS = {"email", "phone"}


class NodeFailed(Exception):
    """A node cannot complete (not retried). ``outcome`` is kept on the task (no personal values)."""

    def __init__(self, message: str, *, outcome: dict | None = None):
        super().__init__(message)
        self.outcome = outcome or {}


def lease_seconds() -> float:
    return float(getattr(settings, "MAMORU_DSR_LEASE_SECONDS", 30))


def heartbeat_seconds() -> float:
    return float(getattr(settings, "MAMORU_DSR_HEARTBEAT_SECONDS", 10))


# --- plan snapshot ---------------------------------------------------------------------------

def _spec_dict(store: StoreSpec) -> dict:
    data = asdict(store)
    data.pop("secrets", None)  # secrets are read from the Store row when connecting
    data.pop("connection", None)
    return data


def plan_specs(request: DataSubjectRequest) -> list[StoreSpec]:
    stores = []
    for raw in request.plan.get("stores", []):
        collections = [
            CollectionSpec(**{**c, "fields": [FieldSpec(**f) for f in c["fields"]]})
            for c in raw["collections"]
        ]
        stores.append(StoreSpec(**{**raw, "collections": collections}))
    return stores


def plan_graph(request: DataMapGraph | DataSubjectRequest) -> DataMapGraph:
    return DataMapGraph(plan_specs(request))


def request_seeds(request: DataSubjectRequest) -> dict[str, list[str]]:
    return json.loads(request.seeds) if request.seeds else {}


def request_details(request: DataSubjectRequest) -> dict:
    return json.loads(request.details) if request.details else {}


def _seeds_for(request: DataSubjectRequest) -> dict[str, list[str]]:
    """The identities to search with: the verified e-mail plus the profile's known identities.

    E-mails as the person typed them and in canonical form (lower case, Unicode domain); the
    connectors search every form a store may hold (docs/datamap.md, "Identity matching").
    """
    from governance.subjects.identities import email_fold

    seeds: dict[str, set] = defaultdict(set)
    email = (request.email or "").strip()
    if email:
        seeds["email"].update({email, email_fold(email)})
    from dsr.coverage import request_profiles

    for profile in request_profiles(request=request):
        for identity in profile.identities.all():
            key = identity.kind + (f":{identity.namespace}" if identity.namespace else "")
            if identity.value:
                seeds[key].add(email_fold(identity.value) if identity.kind == "email" else identity.value)
    return {k: sorted(v) for k, v in seeds.items() if v}


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=json_default).encode()).hexdigest()


def node_spec_hash(store: StoreSpec, collection: CollectionSpec) -> str:
    """What a node's work depends on: the store type and the collection as mapped."""
    data = asdict(collection)
    for key in ("after", "erase_after"):  # absent before they existed: keep earlier plans' hashes
        if not data.get(key):
            data.pop(key, None)
    return _digest({"type": store.type, "collection": data})[:32]


def datamap_version(specs: list[StoreSpec]) -> str:
    """A short hash of the data map (every store's spec and connection, never its secrets)."""
    data = []
    for store in sorted(specs, key=lambda s: s.key):
        raw = asdict(store)
        raw.pop("secrets", None)
        data.append(raw)
    return _digest(data)[:12]


def plan_current_specs(*, request: DataSubjectRequest) -> list[StoreSpec]:
    """The data map's stores a request of ``request``'s covers now (plus the ``mamoru`` store)."""
    from dsr.connectors.mamoru import mamoru_store_spec
    from dsr.coverage import stores_for_request
    from governance.datamap.selectors import datamap_specs

    # Its workspace's stores and the shared ones (every store when it covers every workspace).
    specs = stores_for_request([s for s in datamap_specs() if s.type != "mamoru"], request=request)
    return specs + [mamoru_store_spec()]


def _same_database(a: StoreSpec, b: StoreSpec) -> bool:
    """Two store keys that are the same database (foreign keys may join them)."""
    return a.key == b.key or (a.type == b.type and bool(a.connection) and a.connection == b.connection)


def _plan_rows(request: DataSubjectRequest, specs: list[StoreSpec]) -> list[dict]:
    """The nodes a request needs with this data map: phase, node, dependencies, retry policy.

    Erasure runs children before parents only within one database (foreign keys); a child in
    another store does not hold its parent back, so one store's failure blocks only its own
    nodes and those that read its results. Verification of a node waits for its own erasure.
    """
    graph = DataMapGraph(specs)
    by_key = {s.key: s for s in specs}
    retry = {s.key: s.retry for s in specs}
    default_retry = getattr(settings, "MAMORU_DSR_RETRY", {})
    rows: list[dict] = []

    def add(phase: str, node: str, deps: list[str]) -> None:
        store = node.split(".", 1)[0]
        policy = {**{"attempts": 5, "backoff_seconds": 2, "max_backoff_seconds": 60}, **default_retry,
                  **retry.get(store, {})}
        spec_hash = (node_spec_hash(by_key[store], graph.nodes[node]) if node in graph.nodes
                     else _digest({"phase": phase, "node": node})[:32])
        rows.append({
            "phase": phase, "node": node, "depends_on": deps, "spec_hash": spec_hash,
            "max_attempts": int(policy["attempts"]), "backoff_seconds": float(policy["backoff_seconds"]),
            "max_backoff_seconds": float(policy["max_backoff_seconds"]),
        })

    kind = request.request_type
    order = graph.access_order()
    if kind in CONSENT_TYPES:
        add(TaskPhase.CONSENT, "mamoru.consent", [])
    else:
        for node in order:
            add(TaskPhase.ACCESS, node, [f"access:{link.parent}" for link in graph.parents(node)]
                + [f"access:{first}" for first in graph.waits_for(node, "after")])
    if kind in {RequestType.ACCESS, RequestType.PORTABILITY}:
        add(TaskPhase.PACKAGE, "package", [f"access:{n}" for n in order])
    elif kind == RequestType.ERASURE:
        for node in graph.erasure_order():
            store = by_key[graph.nodes[node].store]
            add(TaskPhase.ERASURE, node,
                [f"access:{node}"] + [f"erasure:{link.child}" for link in graph.children(node)
                                      if _same_database(by_key[graph.nodes[link.child].store], store)]
                + [f"erasure:{first}" for first in graph.waits_for(node, "erase_after")])
        for node in order:
            add(TaskPhase.VERIFY, node, [f"erasure:{node}"])
    elif kind == RequestType.RECTIFICATION:
        changes = request_details(request).get("changes", [])
        for node in order:
            if _rectify_values(graph.nodes[node], changes):
                add(TaskPhase.RECTIFY, node, [f"access:{node}"])
    return rows


def _plan_snapshot(request: DataSubjectRequest, specs: list[StoreSpec], *, reason: str) -> str:
    version = datamap_version(specs)
    versions = list((request.plan or {}).get("versions", []))
    now = timezone.now().isoformat()
    versions.append({"version": version, "at": now, "reason": reason})
    request.plan = {"stores": [_spec_dict(s) for s in specs], "created_at": now, "version": version,
                    "versions": versions}
    return version


def plan_create(*, request: DataSubjectRequest) -> list[RequestTask]:
    """Snapshot the data map and create the request's task rows (inside the caller's atomic)."""
    specs = plan_current_specs(request=request)
    version = _plan_snapshot(request, specs, reason="planned")
    request.seeds = json.dumps(_seeds_for(request))
    request.save()
    rows = [RequestTask(request=request, position=i, **row) for i, row in enumerate(_plan_rows(request, specs))]
    RequestTask.objects.bulk_create(rows)
    event_add(request, "datamap_version", f"planned with data map version {version}",
              data={"version": version, "reason": "planned"})
    return list(request.tasks.all())


def _frozen(task: RequestTask, by_key: dict[str, RequestTask]) -> bool:
    """Nodes whose effects happened (or may have begun) stay as they are on a re-plan.

    An erasure, rectification or consent node that ran is not run again with a new spec, and the
    access result it worked from is kept (re-reading would take masked values for originals) —
    also once the erasure is to run again (``_erase_again``: its outcome of the earlier run stays).
    """
    if task.phase in {TaskPhase.ERASURE, TaskPhase.RECTIFY, TaskPhase.CONSENT}:
        return task.status == TaskStatus.DONE and not _erase_again(task, by_key)
    if task.phase == TaskPhase.ACCESS:
        for phase in (TaskPhase.ERASURE, TaskPhase.RECTIFY):
            effect = by_key.get(f"{phase}:{task.node}")
            if effect is not None and (effect.attempts > 0 or effect.status != TaskStatus.PENDING
                                       or effect.outcome):
                return True
    return False


def _erase_again(task: RequestTask, by_key: dict[str, RequestTask]) -> bool:
    """A done erasure whose verification found data left: a retry runs it again, then verifies.

    Erasure is idempotent (values computed from the access originals), so running it again puts
    back what a writer restored; the cause must be fixed first, or verification fails again.
    """
    if task.phase != TaskPhase.ERASURE or task.status != TaskStatus.DONE:
        return False
    verify = by_key.get(f"{TaskPhase.VERIFY}:{task.node}")
    return (verify is not None and verify.status == TaskStatus.FAILED
            and (verify.outcome or {}).get("verified") is False and bool((verify.outcome or {}).get("leftovers")))


def plan_refresh(*, request: DataSubjectRequest) -> dict:
    """Re-plan a request with the data map as it is now (inside the caller's atomic).

    Kept: nodes done whose spec did not change, and nodes whose effects ran (see ``_frozen``).
    Reset to pending: failed and waiting nodes, done nodes whose spec changed (and every node
    that read their results). Added: nodes the data map now has. Dropped: unfinished nodes of
    collections no longer in the map. A done erasure whose verification failed because data was
    left runs again, then its verification (``_erase_again``). Returns what changed, by node key.
    """
    specs = plan_current_specs(request=request)
    old_version = (request.plan or {}).get("version", "")
    version = _plan_snapshot(request, specs, reason="retry")
    request.save(update_fields=["plan"])
    wanted = _plan_rows(request, specs)
    tasks = {t.key: t for t in RequestTask.objects.select_for_update().filter(request=request)}
    changes: dict[str, list[str]] = {"kept": [], "reset": [], "added": [], "dropped": [], "frozen": [],
                                     "erase_again": []}
    reset: set[str] = set()
    wanted_keys = {f"{r['phase']}:{r['node']}" for r in wanted}
    for key, task in tasks.items():
        if key in wanted_keys and _erase_again(task, tasks):
            reset.add(key)
            changes["erase_again"].append(key)
    # Nodes to run again: everything not done, and done nodes whose spec changed (unless frozen).
    for row in wanted:
        key = f"{row['phase']}:{row['node']}"
        task = tasks.get(key)
        if task is None:
            continue
        if _frozen(task, tasks):
            if task.spec_hash and task.spec_hash != row["spec_hash"]:
                changes["frozen"].append(key)
            continue
        if task.status != TaskStatus.DONE or task.spec_hash != row["spec_hash"]:
            reset.add(key)
    # ... and whatever depends on them (their inputs change), again unless frozen.
    grew = True
    while grew:
        grew = False
        for row in wanted:
            key = f"{row['phase']}:{row['node']}"
            task = tasks.get(key)
            if key in reset or task is None or _frozen(task, tasks):
                continue
            if any(d in reset or d not in tasks for d in row["depends_on"]):
                reset.add(key)
                grew = True
    for position, row in enumerate(wanted):
        key = f"{row['phase']}:{row['node']}"
        task = tasks.get(key)
        if task is None:
            RequestTask.objects.create(request=request, position=position, **row)
            changes["added"].append(key)
            continue
        task.position = position
        task.depends_on = row["depends_on"]
        task.max_attempts = row["max_attempts"]
        task.backoff_seconds = row["backoff_seconds"]
        task.max_backoff_seconds = row["max_backoff_seconds"]
        if key in reset:
            task.status = TaskStatus.PENDING
            task.attempts = 0
            task.lease = None
            task.lease_expires_at = None
            task.next_attempt_at = None
            task.error = ""
            task.spec_hash = row["spec_hash"]
            changes["reset"].append(key)
        else:
            changes["kept"].append(key)
        task.save()
    for key, task in tasks.items():
        if key not in wanted_keys:
            if task.status == TaskStatus.DONE:
                changes["kept"].append(key)  # done under an earlier map: part of the record
            else:
                task.delete()
                changes["dropped"].append(key)
    changed = old_version != version
    summary = (f"re-planned with data map version {version}"
               + ("" if changed else " (unchanged)")
               + f": {len(changes['reset'])} nodes to run again, {len(changes['added'])} new, "
               f"{len(changes['kept'])} kept, {len(changes['dropped'])} dropped")
    if changes["frozen"]:
        summary += (f"; {len(changes['frozen'])} nodes whose erasure already ran keep the earlier spec "
                    f"({', '.join(changes['frozen'][:10])})")
    event_add(request, "datamap_version", summary,
              data={"version": version, "previous": old_version, "reason": "retry", **changes})
    if changes["erase_again"]:
        nodes = sorted(k.split(":", 1)[1] for k in changes["erase_again"])
        event_add(request, "erase_again",
                  f"verification had found data left in {', '.join(nodes)}: the erasure of "
                  f"{'these nodes' if len(nodes) > 1 else 'this node'} runs again from the values read "
                  "in the access phase, then verification", data={"nodes": nodes})
    return changes


# --- dispatch ---------------------------------------------------------------------------------

def dispatch(task_ids: list[int], *, countdown: float | None = None) -> None:
    """Send node tasks to Celery after the current transaction commits (or queue them inline)."""
    if not task_ids:
        return
    inline = _inline_queue.get()
    if inline is not None:
        inline.extend(task_ids)
        return

    def send() -> None:
        from dsr.tasks import dsr_node_run

        for task_id in task_ids:
            dsr_node_run.apply_async(args=[task_id], countdown=countdown)

    transaction.on_commit(send)


@contextlib.contextmanager
def inline_mode():
    """Within this block node tasks are not sent to Celery (``run_inline`` runs them)."""
    token = _inline_queue.set([])
    try:
        yield
    finally:
        _inline_queue.reset(token)


def run_inline(request: DataSubjectRequest, *, max_steps: int = 10_000, honour_backoff: bool = False,
               stop_before: set[str] | None = None) -> None:
    """Run a request's queued nodes in this process (tests, benchmarks, ``manage.py dsr_run``).

    Nodes waiting to retry run at once unless ``honour_backoff`` (then their delay is slept).
    ``stop_before``: node keys (``verify:shop.customers``) not to run; the run stops when only
    those are left (a test can then act between phases and call ``run_inline`` again).
    """
    queue: list[int] = []
    held: list[int] = []
    token = _inline_queue.set(queue)
    try:
        queue.extend(
            RequestTask.objects.filter(request=request, status__in=[TaskStatus.QUEUED, TaskStatus.RETRY_WAIT])
            .values_list("id", flat=True)
        )
        steps = 0
        while queue and steps < max_steps:
            task_id = queue.pop(0)
            task = RequestTask.objects.get(pk=task_id)
            if stop_before and task.key in stop_before:
                held.append(task_id)
                continue
            if honour_backoff and task.next_attempt_at and task.next_attempt_at > timezone.now():
                time.sleep((task.next_attempt_at - timezone.now()).total_seconds())
            node_run(task_id=task_id)
            steps += 1
    finally:
        _inline_queue.reset(token)


def event_add(request: DataSubjectRequest, kind: str, message: str = "", *, actor=None, data=None) -> None:
    RequestEvent.objects.create(
        request=request, kind=kind, message=message[:2000],
        actor=actor if getattr(actor, "pk", None) else None, data=data or {},
    )


# --- running one node -------------------------------------------------------------------------

def _claim(task_id: int) -> tuple[RequestTask, uuid.UUID] | None:
    with transaction.atomic():
        task = lock_rows(RequestTask.objects.select_related("request").filter(pk=task_id)).first()
        if task is None or task.request.status != RequestStatus.RUNNING:
            return None
        now = timezone.now()
        takeover = (task.status == TaskStatus.RUNNING and task.lease_expires_at is not None
                    and task.lease_expires_at <= now and task.attempts < task.max_attempts)
        if task.status not in {TaskStatus.QUEUED, TaskStatus.RETRY_WAIT} and not takeover:
            return None
        if takeover:
            event_add(task.request, "node_requeued",
                      f"{task.key}: lease expired at {task.lease_expires_at:%H:%M:%S} (no heartbeat since "
                      f"{task.heartbeat_at:%H:%M:%S}); taken over by another worker",
                      data=_lease_data(task, now, how="claim"))
        lease = uuid.uuid4()
        task.status = TaskStatus.RUNNING
        task.attempts += 1
        task.lease = lease
        task.started_at = now
        task.heartbeat_at = now
        task.lease_expires_at = now + timedelta(seconds=lease_seconds())
        task.next_attempt_at = None
        task.save(update_fields=["status", "attempts", "lease", "started_at", "heartbeat_at", "lease_expires_at",
                                 "next_attempt_at"])
        return task, lease


def _lease_data(task: RequestTask, now, *, how: str) -> dict:
    return {
        "reason": "lease_expired", "how": how, "node": task.key,
        "lease_expired_at": task.lease_expires_at.isoformat() if task.lease_expires_at else None,
        "last_heartbeat_at": task.heartbeat_at.isoformat() if task.heartbeat_at else None,
        "detected_at": now.isoformat(), "lease_seconds": lease_seconds(),
        "heartbeat_seconds": heartbeat_seconds(), "attempts": task.attempts,
    }


class _Heartbeats:
    """One thread per process renews the leases of the nodes running in it (every
    ``MAMORU_DSR_HEARTBEAT_SECONDS``), so a node takes no thread of its own.

    Nodes run inside a caller's transaction (tests) are not renewed: the renewal would wait for
    that transaction's row lock.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.leases: dict[int, uuid.UUID] = {}
        self.pid: int | None = None

    def add(self, task_id: int, lease: uuid.UUID) -> None:
        if connection.in_atomic_block or heartbeat_seconds() <= 0:
            return
        with self.lock:
            self.leases[task_id] = lease
            if self.pid != os.getpid():  # first node in this process (or in a forked worker child)
                self.pid = os.getpid()
                threading.Thread(target=self._run, name="dsr-heartbeat", daemon=True).start()

    def remove(self, task_id: int) -> None:
        with self.lock:
            self.leases.pop(task_id, None)

    def _run(self) -> None:
        while True:
            time.sleep(heartbeat_seconds())
            with self.lock:
                current = dict(self.leases)
            if not current:
                continue
            try:
                now = timezone.now()
                for task_id, lease in current.items():
                    renewed = RequestTask.objects.filter(pk=task_id, lease=lease, status=TaskStatus.RUNNING).update(
                        heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds()))
                    if not renewed:
                        self.remove(task_id)
                        logger.warning("DSR node %s: lease lost (taken over); its result will be discarded", task_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the lease allows several
                logger.warning("DSR heartbeat failed", exc_info=True)
            finally:
                connections.close_all()  # this thread's connections only


_heartbeats = _Heartbeats()


def node_run(*, task_id: int) -> str:
    """Run one node, then (as a continuation) one of the nodes it made ready; return the first
    node's status (or "skipped" when not claimable).

    The continuation saves a broker round trip per node; the node kept back is already ``queued``
    in the database, so the watchdog sends it again if this worker dies before running it.
    """
    status, follow = _node_run_once(task_id)
    for _ in range(1000):
        if follow is None:
            break
        _status, follow = _node_run_once(follow)
    return status


def _node_run_once(task_id: int) -> tuple[str, int | None]:
    claimed = _claim(task_id)
    if claimed is None:
        return "skipped", None
    task, lease = claimed
    _heartbeats.add(task.pk, lease)
    began = time.monotonic()
    outcome: dict = {}
    error = ""
    status = TaskStatus.DONE
    retry_in: float | None = None
    try:
        outcome = PHASES[task.phase](task)
    except StoreUnavailable as exc:
        error = f"store unavailable: {exc}"
        if task.attempts < task.max_attempts:
            status = TaskStatus.RETRY_WAIT
            retry_in = min(task.backoff_seconds * (2 ** (task.attempts - 1)), task.max_backoff_seconds)
            retry_in = max(retry_in, getattr(exc, "retry_after", None) or 0)  # the store's Retry-After
        else:
            status = TaskStatus.FAILED
            error = f"gave up after {task.attempts} attempts: {error}"
    except NodeFailed as exc:
        status, error, outcome = TaskStatus.FAILED, str(exc), dict(exc.outcome)
    except StoreError as exc:
        status, error = TaskStatus.FAILED, str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug must surface as a failed node, not a lost one
        logger.exception("DSR node %s crashed", task.key)
        status = TaskStatus.FAILED
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
    finally:
        _heartbeats.remove(task.pk)
    follow = _finish(task, lease, status=status, error=error, outcome=outcome, retry_in=retry_in,
                     duration_ms=int((time.monotonic() - began) * 1000))
    return status, follow


def _finish(task: RequestTask, lease: uuid.UUID, *, status: str, error: str, outcome: dict,
            retry_in: float | None, duration_ms: int) -> int | None:
    with transaction.atomic():
        current = RequestTask.objects.select_for_update().get(pk=task.pk)
        if current.lease != lease:
            return None  # the node was taken over meanwhile (lease expired); that run reports
        now = timezone.now()
        current.status = status
        current.error = error[:4000]
        current.duration_ms = duration_ms
        current.heartbeat_at = now
        current.lease = None
        current.lease_expires_at = None
        if status == TaskStatus.RETRY_WAIT:
            current.next_attempt_at = now + timedelta(seconds=retry_in or 0)
        else:
            current.finished_at = now
        for name in ("rows_found", "rows_changed", "result_path"):
            if name in outcome:
                setattr(current, name, outcome.pop(name))
        current.outcome = outcome
        current.save()
        if status == TaskStatus.RETRY_WAIT:
            event_add(current.request, "node_retry",
                      f"{current.key}: attempt {current.attempts} of {current.max_attempts} failed "
                      f"({error[:300]}); retrying in {retry_in:.0f}s")
            dispatch([current.pk], countdown=retry_in)
        elif status == TaskStatus.FAILED:
            event_add(current.request, "node_failed", f"{current.key}: {error.splitlines()[0][:500] if error else ''}",
                      data={"node": current.key})
        keep = status == TaskStatus.DONE and _inline_queue.get() is None
        return request_advance(request_id=current.request_id, keep_one=keep)


def _blocked(tasks: list[RequestTask]) -> set[str]:
    """Keys of pending nodes that can never run: a dependency failed (or is itself blocked)."""
    by_key = {t.key: t for t in tasks}
    blocked: set[str] = set()
    grew = True
    while grew:
        grew = False
        for t in tasks:
            if t.status != TaskStatus.PENDING or t.key in blocked:
                continue
            for dep in t.depends_on:
                d = by_key.get(dep)
                if d is None or d.status == TaskStatus.FAILED or dep in blocked:
                    blocked.add(t.key)
                    grew = True
                    break
    return blocked


def attention_text(failed: list[RequestTask], blocked: list[str]) -> str:
    """The reasons a request needs attention: one line per failed node, then what waits on them."""
    lines = [f"{t.key}: {(t.error.splitlines() or [''])[0][:500]}" for t in failed]
    if blocked:
        lines.append(f"waiting on the failed nodes: {', '.join(blocked)}")
    return "\n".join(lines)


def request_advance(*, request_id: uuid.UUID, keep_one: bool = False) -> int | None:
    """Queue the nodes whose dependencies are done; close the request when nothing more can run.

    A failed node blocks only the nodes that depend on it. When every node that can run has run,
    the request completes (all done) or needs attention (some failed), with the reasons.
    With ``keep_one`` one ready node is queued but not sent; its id is returned for the caller
    to run next.
    """
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request_id)
        if request.status != RequestStatus.RUNNING:
            return None
        tasks = list(request.tasks.all())
        by_key = {t.key: t for t in tasks}
        ready = [
            t for t in tasks
            if t.status == TaskStatus.PENDING
            and all(d in by_key and by_key[d].status == TaskStatus.DONE for d in t.depends_on)
        ]
        now = timezone.now()
        for t in ready:
            t.status = TaskStatus.QUEUED
            t.queued_at = now
            t.save(update_fields=["status", "queued_at"])
        kept = ready[0].pk if keep_one and ready else None
        dispatch([t.pk for t in ready if t.pk != kept])
        if any(t.status in ACTIVE for t in tasks):
            return kept
        failed = [t for t in tasks if t.status == TaskStatus.FAILED]
        if failed:
            blocked = sorted(_blocked(tasks), key=lambda k: by_key[k].position)
            request.status = RequestStatus.NEEDS_ATTENTION
            request.attention_reason = attention_text(failed, blocked)
            request.save(update_fields=["status", "attention_reason"])
            event_add(request, "needs_attention", request.attention_reason,
                      data={"failed": [t.key for t in failed], "blocked": blocked,
                            "done": [t.key for t in tasks if t.status == TaskStatus.DONE]})
            transaction.on_commit(lambda: _notify_attention(request.pk))
            return None
        if all(t.status == TaskStatus.DONE for t in tasks):
            from dsr.services import request_complete

            request_complete(request=request)
        return kept


def _notify_attention(request_id) -> None:
    from dsr.notifications import mail_staff

    request = DataSubjectRequest.objects.filter(pk=request_id).first()
    if request is None or request.status != RequestStatus.NEEDS_ATTENTION:
        return
    try:
        mail_staff(request=request, template="attention", reason=request.attention_reason,
                   type_label=RequestType(request.request_type).label)
    except Exception:  # noqa: BLE001 - the request's state is recorded; a mail failure is only logged
        logger.exception("DSR %s: could not e-mail the DPOs", str(request.pk)[:8])


# --- phases -----------------------------------------------------------------------------------

def _connector(request: DataSubjectRequest, store: StoreSpec):
    context = {"request_id": str(request.id), "profile_id": str(request.profile_id or ""),
               "workspace_id": request.workspace_id}
    if store.type == "mamoru":
        from dsr.coverage import request_profiles

        context["profile_ids"] = [str(p.pk) for p in request_profiles(request=request)]
        return connector_class("mamoru")(store_key=store.key, settings={}, context=context)
    from governance.datamap.models import Store
    from governance.datamap.selectors import StoreMisconfigured, store_connection_settings

    row = Store.objects.filter(key=store.key).first()
    if row is None:
        raise NodeFailed(f"store {store.key!r} was removed from the data map after planning")
    try:
        settings_ = store_connection_settings(store=row)
    except StoreMisconfigured as exc:
        raise NodeFailed(str(exc)) from exc
    return connector_class(store.type)(store_key=store.key, settings=settings_, context=context)


def _access_name(node: str) -> str:
    return f"access-{node}.jsonl.enc"


def _node_inputs(request: DataSubjectRequest, graph: DataMapGraph, node: str) -> dict[str, list]:
    seeds = request_seeds(request)
    collection = graph.nodes[node]
    inputs: dict[str, set] = defaultdict(set)
    for f in collection.fields:
        if f.identity:
            key = f.identity + (f":{f.namespace}" if f.namespace else "")
            inputs[f.name].update(seeds.get(key, []))
    for link in graph.parents(node):
        for row in files.read_rows(request_id=request.id, dek_id=request.data_key_id,
                                   name=_access_name(link.parent)):
            value = row.get(link.parent_field)
            if value is not None and value != "":
                inputs[link.child_field].add(value)
    return {k: sorted(v, key=str) for k, v in inputs.items() if v}


def _parts(task: RequestTask) -> tuple[DataSubjectRequest, DataMapGraph, CollectionSpec, StoreSpec]:
    request = task.request
    graph = plan_graph(request)
    collection = graph.nodes.get(task.node)
    if collection is None:
        raise NodeFailed(f"{task.node} is not in the request's data map (re-planned without it)")
    return request, graph, collection, graph.stores[collection.store]


# --- keyed fingerprints (verification without keeping values) ---------------------------------

def _fingerprint_key(request: DataSubjectRequest) -> bytes:
    """A per-request key for fingerprints, separate from the masking key (a fingerprint never
    equals a value the hash strategy writes)."""
    return hmac.new(_secret(request), b"mamoru-dsr-verify-fingerprint", hashlib.sha256).digest()


def _normalised(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().casefold()
        return text or None
    return json.dumps(value, default=json_default, sort_keys=True)


def fingerprint(key: bytes, value) -> str | None:
    """Keyed hash of a value (case, width and surrounding spaces ignored); None for empty values."""
    text = _normalised(value)
    if text is None:
        return None
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def _personal(f: FieldSpec) -> bool:
    return category_is_personal(f.category) or f.identity in PERSONAL_IDENTITY_KINDS


def _checked_fields(collection: CollectionSpec) -> list[FieldSpec]:
    """Fields whose original value must be gone after erasure: every field with a strategy that
    changes it (a personal field without an explicit strategy is nulled, see ``effective_strategy``)
    and personal key fields (their row must be deleted, unless retained)."""
    out = []
    for f in collection.fields:
        strategy = f.effective_strategy
        if strategy:
            if not strategy_get(strategy).keeps_value:
                out.append(f)
        elif f.primary_key and _personal(f):
            out.append(f)
    return out


def row_label(collection: CollectionSpec, row: dict, key: bytes) -> str:
    """How a row is named in results and messages: ``id=42``; a keyed hash when the key is personal."""
    pk = [collection.field(name) for name in collection.primary_key]
    values = [row.get(f.name) for f in pk]
    if not pk:
        return "k:" + (fingerprint(key, json.dumps(row, sort_keys=True, default=json_default)) or "")[:16]
    if any(_personal(f) for f in pk):
        return "k:" + (fingerprint(key, json.dumps([str(v) for v in values])) or "")[:16]
    return ",".join(f"{f.name}={v}" for f, v in zip(pk, values, strict=True))


def _row_fingerprints(collection: CollectionSpec, row: dict, key: bytes) -> dict[str, str]:
    out = {}
    for f in _checked_fields(collection):
        fp = fingerprint(key, row.get(f.name))
        if fp is not None:
            out[f.name] = fp
    return out


# What an erased field may hold, and what counts as one of the subject's identities.
_IDENTITY_CATEGORIES = {"user.contact.email": "email", "user.contact.phone_number": "phone"}
_PHONE_TEXT = re.compile(r"^[\d\s+\-.()/]+(?:(?:ext\.?|x|#)\s*\d+)?$", re.IGNORECASE)


def _identity_kind(f: FieldSpec | None) -> str | None:
    """``email`` or ``phone`` when the field holds one (declared identity, else its category)."""
    if f is None:
        return None
    if f.identity in PERSONAL_IDENTITY_KINDS:
        return f.identity
    return _IDENTITY_CATEGORIES.get(f.category or "")


def _phone_keys(value) -> set[str]:
    """Digit strings a phone number is compared by (trunk 0 dropped; E.164 digits when it parses)."""
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if not _PHONE_TEXT.match(text):
        return set()
    keys = set()
    digits = re.sub(r"\D", "", text).lstrip("0")
    if len(digits) >= 7:
        keys.add(digits)
    e164 = phone_fold(text, region=None)
    if e164 and len(e164) >= 8:
        keys.add(e164.lstrip("+"))
    return keys


def _same_identity(kind: str, value, identity) -> bool:
    """Whether ``value`` is ``identity`` written differently (case, width, spaces, phone format)."""
    if kind == "email":
        text = str(value)
        return "@" in text and email_fold(text) == email_fold(identity)
    ours, theirs = _phone_keys(value), _phone_keys(identity)
    return any(a == b or (abs(len(a) - len(b)) <= 3 and (a.endswith(b) or b.endswith(a)))
               for a in ours for b in theirs)


def _holds_identity(value, identities: list[tuple[str, object]]) -> bool:
    return any(_same_identity(kind, value, identity) for kind, identity in identities)


def _row_identities(collection: CollectionSpec, row: dict) -> list[tuple[str, object]]:
    """The e-mails and phone numbers a row held when it was read (in memory only)."""
    out = []
    for f in collection.fields:
        kind = _identity_kind(f)
        if kind and _normalised(row.get(f.name)) is not None:
            out.append((kind, row[f.name]))
    return out


def _comparable(value):
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        try:
            return format(Decimal(str(value)).normalize(), "f")
        except InvalidOperation:
            return str(value)
    return value


def _erased_problem(key: bytes, f: FieldSpec | None, value, original, expected, before: str | None,
                    identities: list[tuple[str, object]]) -> str | None:
    """Why a checked field does not hold what the erasure planned for it (None: it does).

    ``expected`` is the planned value, computed again from the original (NULL for ``null``, and
    for a field that was empty when read). NULL or empty is always accepted: it holds nothing.
    Values are compared by keyed hash; an e-mail or phone written differently is still itself.
    """
    if _normalised(value) is None:
        return None
    now = fingerprint(key, _comparable(value))
    if expected is not None and now == fingerprint(key, _comparable(expected)):
        return None
    if now in {before, fingerprint(key, _comparable(original))} - {None}:
        return "still holds its original value"
    kind = _identity_kind(f)
    if kind and original is not None and _same_identity(kind, value, original):
        return "still holds its original value (written differently)"
    if _holds_identity(value, identities):
        return "holds one of the subject's identities"
    if _normalised(original) is None:
        return "was empty when read and now holds a value (it must stay empty)"
    if expected is None:
        return "holds a value where the erasure wrote null"
    return "does not hold the value the erasure wrote"


def phase_access(task: RequestTask) -> dict:
    request, graph, collection, store = _parts(task)
    inputs = _node_inputs(request, graph, task.node)
    name = _access_name(task.node)
    fingerprints: dict[str, dict] = {}
    capture = request.request_type == RequestType.ERASURE and bool(_checked_fields(collection))
    key = _fingerprint_key(request) if capture else b""

    def tap(rows):
        for row in rows:
            if capture:
                fingerprints[row_label(collection, row, key)] = _row_fingerprints(collection, row, key)
            yield row

    if not inputs and store.type != "mamoru":
        # No identity and no parent value leads here: searched, nothing to find (not an error).
        path, count = files.write_rows(request_id=request.id, dek_id=request.data_key_id, name=name, rows=[])
    else:
        with _connector(request, store) as connector:
            # Streamed: rows go from the store to the encrypted file chunk by chunk.
            path, count = files.write_rows(request_id=request.id, dek_id=request.data_key_id, name=name,
                                           rows=tap(connector.retrieve(collection, inputs)))
    outcome = {"rows_found": count, "result_path": str(path), "input_fields": sorted(inputs)}
    if capture:
        outcome["fingerprints"] = fingerprints
    return outcome


def _secret(request: DataSubjectRequest) -> bytes:
    return bytes.fromhex(request.masking_secret)


def _originals(request: DataSubjectRequest, node: str) -> list[dict]:
    return list(files.read_rows(request_id=request.id, dek_id=request.data_key_id, name=_access_name(node)))


def phase_erasure(task: RequestTask) -> dict:
    request, _graph, collection, store = _parts(task)
    plans = [p for p in (row_plan(collection=collection, row=row, secret=_secret(request), node=task.node)
                         for row in _originals(request, task.node)) if p is not None]
    deletes = [p for p in plans if p.delete]
    updates = [p for p in plans if not p.delete]
    changed = 0
    if plans:
        with _connector(request, store) as connector:
            if updates:
                changed += connector.mask(collection, updates)
            if deletes:
                changed += connector.delete(collection, deletes)
    masked_fields = sorted({name for p in updates for name in p.values})
    return {"rows_found": len(plans), "rows_changed": changed, "deleted": len(deletes),
            "masked": len(updates), "masked_fields": masked_fields}


def phase_verify(task: RequestTask) -> dict:
    """Check nothing of the subject is left in the collection.

    1. Every row the access phase found is read again by its key: a row planned for deletion must
       be gone; in a kept row every personal field that is not retained must hold what the erasure
       planned for it — NULL (or empty), or the value the plan computes again from the original
       (keyed hashes compared, never values kept; see ``_erased_problem``). No other field may hold
       one of the subject's identities (the request's, or the row's e-mails and phones as read).
    2. The collection is searched again by every identity (and parent value): a row of the
       subject that was not there at access time is also left over.
    3. ``mamoru.profile``: every profile found must be shredded, with no identity left that finds
       it (unless a field of the collection is retained: a legal hold).
    """
    request, graph, collection, store = _parts(task)
    originals = _originals(request, task.node)
    key = _fingerprint_key(request)
    access = RequestTask.objects.filter(request=request, phase=TaskPhase.ACCESS, node=task.node).first()
    fingerprints = (access.outcome or {}).get("fingerprints") if access is not None else None
    if fingerprints is None:  # planned before fingerprints existed: compute them from the access file
        fingerprints = {row_label(collection, r, key): _row_fingerprints(collection, r, key) for r in originals}
    subject_identities = [(kind.split(":", 1)[0], v) for kind, values in request_seeds(request).items()
                          if kind.split(":", 1)[0] in PERSONAL_IDENTITY_KINDS for v in values]
    retained = sorted(f.name for f in collection.fields
                      if f.effective_strategy and strategy_get(f.effective_strategy).keeps_value)
    checked = {f.name for f in _checked_fields(collection)}
    pk = set(collection.primary_key)
    by_label = {row_label(collection, r, key): r for r in originals}
    leftovers: list[dict] = []

    def leftover(row: str, field: str, why: str) -> None:
        leftovers.append({"store": store.key, "collection": collection.name, "field": field, "row": row,
                          "problem": why})

    inputs = _node_inputs(request, graph, task.node)
    reread: list[dict] = []
    found: list[dict] = []
    with _connector(request, store) as connector:
        if originals:
            reread = list(connector.retrieve_by_key(collection, originals))
            if not connector.rereads_by_key(collection):
                # A kept (masked) row the connector cannot find by key again cannot be verified.
                seen = {row_label(collection, r, key) for r in reread}
                for label, original in by_label.items():
                    plan = row_plan(collection=collection, row=original, secret=_secret(request), node=task.node)
                    if label not in seen and plan is not None and not plan.delete and fingerprints.get(label):
                        leftover(label, "*", "cannot be read again by key to verify it "
                                 "(configure options.read for this collection)")
        if inputs or store.type == "mamoru":
            found = list(connector.retrieve(collection, inputs))
    # Every Mamoru profile the request covers must be crypto-shredded (unless the collection
    # retains a field: a legal hold), whatever the plan said: a profile still read back is left.
    shred_all = store.type == "mamoru" and collection.name == "profile" and not retained
    for row in reread:
        label = row_label(collection, row, key)
        original = by_label.get(label)
        if original is None:
            continue  # not asked for (a connector returning more): judged by the search below
        if shred_all:
            leftover(label, "*", "the Mamoru profile is not shredded (its identities still find it)")
            continue
        plan = row_plan(collection=collection, row=original, secret=_secret(request), node=task.node)
        if plan is not None and plan.delete:
            leftover(label, "*", "row planned for deletion is still present")
            continue
        before = fingerprints.get(label, {})
        for name in sorted(checked & pk):
            # a kept row (legal hold) keeps its key: only a personal key is left over
            if name in before and _personal(collection.field(name)):
                leftover(label, name, "the row's key is personal data and the row is still present")
        planned = plan.values if plan is not None else {}
        identities = subject_identities + _row_identities(collection, original)
        for name, value in sorted(row.items()):
            if name in retained or name in pk or name == "_key":
                continue
            if name in checked:
                problem = _erased_problem(key, collection.field(name), value, original.get(name),
                                          planned.get(name, original.get(name)), before.get(name), identities)
                if problem:
                    leftover(label, name, problem)
            elif isinstance(value, str) and _holds_identity(value, identities):
                leftover(label, name, "holds one of the subject's identities")
    for row in found:
        label = row_label(collection, row, key)
        if label not in by_label:
            leftover(label, "*", "a row matching the subject appeared after the access phase")
    if leftovers:
        unique = {(x["store"], x["collection"], x["row"], x["field"], x["problem"]): x for x in leftovers}
        items = [unique[k] for k in sorted(unique)]
        text = "; ".join(f"store {x['store']}, collection {x['collection']}, row {x['row']}"
                         + (f", field {x['field']}" if x["field"] != "*" else "") + f": {x['problem']}"
                         for x in items[:20])
        more = f" (and {len(items) - 20} more)" if len(items) > 20 else ""
        raise NodeFailed(f"{ERR_LEFTOVER}: {text}{more}", outcome={"leftovers": items[:200], "verified": False})
    return {"rows_found": len(reread) + len([r for r in found if row_label(collection, r, key) not in by_label]),
            "rows_changed": 0, "verified": True, "rows_reread": len(originals), "retained_fields": retained,
            "checked_fields": sorted(checked)}


def _rectify_values(collection: CollectionSpec, changes: list[dict]) -> dict[str, object]:
    values = {}
    for change in changes:
        for f in collection.fields:
            if f.primary_key or f.references:
                continue
            if change.get("field") == f"{collection.address}.{f.name}" or (
                change.get("category") and change.get("category") == f.category
            ):
                values[f.name] = change.get("value")
    return values


def phase_rectify(task: RequestTask) -> dict:
    request, _graph, collection, store = _parts(task)
    values = _rectify_values(collection, request_details(request).get("changes", []))
    pk = collection.primary_key
    plans = [
        RowPlan(key={k: row.get(k) for k in pk}, delete=False, values=values, original=row)
        for row in _originals(request, task.node)
    ]
    changed = 0
    if plans and values:
        with _connector(request, store) as connector:
            changed = connector.mask(collection, plans)
    return {"rows_found": len(plans), "rows_changed": changed, "fields": sorted(values)}


def phase_consent(task: RequestTask) -> dict:
    from dsr.consent_bridge import consent_apply

    return consent_apply(request=task.request)


def phase_package(task: RequestTask) -> dict:
    from dsr.package import package_build

    package = package_build(request=task.request)
    return {"rows_found": package.summary_rows, "result_path": package.path}


PHASES = {
    TaskPhase.ACCESS: phase_access,
    TaskPhase.ERASURE: phase_erasure,
    TaskPhase.VERIFY: phase_verify,
    TaskPhase.RECTIFY: phase_rectify,
    TaskPhase.CONSENT: phase_consent,
    TaskPhase.PACKAGE: phase_package,
}


# --- watchdog ---------------------------------------------------------------------------------

def watchdog_run(*, stale_after: timedelta | None = None, lost_after: timedelta | None = None) -> int:
    """Requeue nodes left behind by dead workers or lost messages; return how many.

    A running node whose lease expired (no heartbeat for ``MAMORU_DSR_LEASE_SECONDS``) belongs to
    a dead worker. ``stale_after`` (tests, operators) instead requeues running nodes whose last
    heartbeat is older than that. Nodes queued or due for a retry longer than ``lost_after``
    without being claimed lost their broker message: they are sent again (once per period).
    """
    now = timezone.now()
    lost_after = lost_after if lost_after is not None else timedelta(
        seconds=getattr(settings, "MAMORU_DSR_LOST_MESSAGE_SECONDS", 300))
    hard_timeout = timedelta(seconds=getattr(settings, "MAMORU_DSR_NODE_TIMEOUT_SECONDS", 600))
    requeued: list[int] = []
    with transaction.atomic():
        running = RequestTask.objects.filter(request__status=RequestStatus.RUNNING, status=TaskStatus.RUNNING)
        if stale_after is not None:
            running = running.filter(heartbeat_at__lte=now - stale_after)
        else:
            from django.db.models import Q

            running = running.filter(Q(lease_expires_at__lte=now)
                                     | Q(lease_expires_at=None, heartbeat_at__lte=now - hard_timeout))
        # Only the task rows, and skip rows a live worker holds: those are not stuck.
        for task in lock_rows(running, skip_locked=True):
            data = _lease_data(task, now, how="watchdog")
            if stale_after is not None:
                data["reason"] = "stale_heartbeat"
            task.status = TaskStatus.QUEUED if task.attempts < task.max_attempts else TaskStatus.FAILED
            task.lease = None
            task.lease_expires_at = None
            task.queued_at = now
            if task.status == TaskStatus.FAILED:
                task.error = f"worker lost {task.attempts} times; attempt budget used up"
            task.save(update_fields=["status", "lease", "lease_expires_at", "queued_at", "error"])
            why = (f"lease expired at {data['lease_expired_at'][11:19]}" if data["reason"] == "lease_expired"
                   else "no heartbeat")
            event_add(task.request, "node_requeued", f"{task.key}: worker stopped mid-node ({why}); "
                      + ("requeued" if task.status == TaskStatus.QUEUED else "attempt budget used up"), data=data)
            if task.status == TaskStatus.QUEUED:
                requeued.append(task.pk)
        lost = list(RequestTask.objects.filter(
            request__status=RequestStatus.RUNNING, status=TaskStatus.QUEUED, queued_at__lte=now - lost_after,
        ).exclude(pk__in=requeued).values_list("pk", flat=True))
        RequestTask.objects.filter(pk__in=lost).update(queued_at=now)  # sent again once per period
        waiting = list(RequestTask.objects.filter(
            request__status=RequestStatus.RUNNING, status=TaskStatus.RETRY_WAIT,
            next_attempt_at__lte=now - lost_after,
        ).values_list("pk", flat=True))
        RequestTask.objects.filter(pk__in=waiting).update(next_attempt_at=now)
        requeued += lost + waiting
        dispatch(requeued)
    for request_id in set(RequestTask.objects.filter(pk__in=requeued).values_list("request_id", flat=True)) | set(
        RequestTask.objects.filter(status=TaskStatus.FAILED, request__status=RequestStatus.RUNNING)
        .values_list("request_id", flat=True)
    ):
        request_advance(request_id=request_id)
    return len(requeued)
