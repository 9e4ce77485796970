"""Plan and run a request: one persisted task row per graph node and phase.

- The plan snapshots the data map into the request, so a reload mid-request changes nothing.
- A node is claimed in a transaction (status + lease); its result goes to an encrypted file; the
  row is finished only by the run holding the lease. Running a node twice gives the same effect:
  access rewrites its file, erasure computes new values from the originals read in the access
  phase, and a delete of a missing row counts as done.
- A store that is down raises ``StoreUnavailable``: the node waits (``retry_wait``) with
  exponential backoff up to the store's budget, then fails. A failed node puts the request in
  ``needs_attention``; its dependants never run on missing input.
- The watchdog requeues nodes whose worker died (``running`` too long) and nodes whose broker
  message was lost (``queued``/``retry_wait`` overdue).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import time
import traceback
import uuid
from collections import defaultdict
from dataclasses import asdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
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
from governance.datamap.graph import DataMapGraph
from governance.datamap.spec import CollectionSpec, FieldSpec, StoreSpec
from governance.locking import lock_rows

logger = logging.getLogger(__name__)

_inline_queue: contextvars.ContextVar[list | None] = contextvars.ContextVar("dsr_inline_queue", default=None)

ERR_LEFTOVER = "identifying data is still present"


class NodeFailed(Exception):
    """A node cannot complete (not retried)."""


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
    """The identities to search with: the verified e-mail plus the profile's known identities."""
    seeds: dict[str, set] = defaultdict(set)
    email = (request.email or "").strip()
    seeds["email"].update({email, email.lower()})
    if request.profile_id:
        for identity in request.profile.identities.all():
            key = identity.kind + (f":{identity.namespace}" if identity.namespace else "")
            if identity.value:
                seeds[key].add(identity.value)
    return {k: sorted(v) for k, v in seeds.items() if v}


def plan_create(*, request: DataSubjectRequest) -> list[RequestTask]:
    """Snapshot the data map and create the request's task rows (inside the caller's atomic)."""
    from dsr.connectors.mamoru import mamoru_store_spec
    from governance.datamap.selectors import datamap_specs

    specs = [s for s in datamap_specs() if s.type != "mamoru"] + [mamoru_store_spec()]
    graph = DataMapGraph(specs)
    request.plan = {"stores": [_spec_dict(s) for s in specs], "created_at": timezone.now().isoformat()}
    request.seeds = json.dumps(_seeds_for(request))
    request.save()
    retry = {s.key: s.retry for s in specs}
    default_retry = getattr(settings, "MAMORU_DSR_RETRY", {})

    rows: list[RequestTask] = []

    def add(phase: str, node: str, deps: list[str]) -> None:
        store = node.split(".", 1)[0]
        policy = {**{"attempts": 5, "backoff_seconds": 2, "max_backoff_seconds": 60}, **default_retry,
                  **retry.get(store, {})}
        rows.append(RequestTask(
            request=request, phase=phase, node=node, depends_on=deps, position=len(rows),
            max_attempts=int(policy["attempts"]), backoff_seconds=float(policy["backoff_seconds"]),
            max_backoff_seconds=float(policy["max_backoff_seconds"]),
        ))

    kind = request.request_type
    order = graph.access_order()
    if kind in CONSENT_TYPES:
        add(TaskPhase.CONSENT, "mamoru.consent", [])
    else:
        for node in order:
            add(TaskPhase.ACCESS, node, [f"access:{link.parent}" for link in graph.parents(node)])
    if kind in {RequestType.ACCESS, RequestType.PORTABILITY}:
        add(TaskPhase.PACKAGE, "package", [f"access:{n}" for n in order])
    elif kind == RequestType.ERASURE:
        for node in graph.erasure_order():
            add(TaskPhase.ERASURE, node,
                [f"access:{node}"] + [f"erasure:{link.child}" for link in graph.children(node)])
        for node in order:
            add(TaskPhase.VERIFY, node, [f"erasure:{n}" for n in order])
    elif kind == RequestType.RECTIFICATION:
        changes = request_details(request).get("changes", [])
        for node in order:
            if _rectify_values(graph.nodes[node], changes):
                add(TaskPhase.RECTIFY, node, [f"access:{node}"])
    RequestTask.objects.bulk_create(rows)
    return list(request.tasks.all())


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


def run_inline(request: DataSubjectRequest, *, max_steps: int = 10_000, honour_backoff: bool = False) -> None:
    """Run a request's queued nodes in this process (tests, benchmarks, ``manage.py dsr_run``).

    Nodes waiting to retry run at once unless ``honour_backoff`` (then their delay is slept).
    """
    queue: list[int] = []
    token = _inline_queue.set(queue)
    try:
        queue.extend(
            RequestTask.objects.filter(request=request, status__in=[TaskStatus.QUEUED, TaskStatus.RETRY_WAIT])
            .values_list("id", flat=True)
        )
        steps = 0
        while queue and steps < max_steps:
            task_id = queue.pop(0)
            if honour_backoff:
                task = RequestTask.objects.get(pk=task_id)
                if task.next_attempt_at and task.next_attempt_at > timezone.now():
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
        if task is None or task.status not in {TaskStatus.QUEUED, TaskStatus.RETRY_WAIT}:
            return None
        if task.request.status != RequestStatus.RUNNING:
            return None
        lease = uuid.uuid4()
        now = timezone.now()
        task.status = TaskStatus.RUNNING
        task.attempts += 1
        task.lease = lease
        task.started_at = now
        task.heartbeat_at = now
        task.next_attempt_at = None
        task.save(update_fields=["status", "attempts", "lease", "started_at", "heartbeat_at", "next_attempt_at"])
        return task, lease


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
        else:
            status = TaskStatus.FAILED
            error = f"gave up after {task.attempts} attempts: {error}"
    except (StoreError, NodeFailed) as exc:
        status, error = TaskStatus.FAILED, str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug must surface as a failed node, not a lost one
        logger.exception("DSR node %s crashed", task.key)
        status = TaskStatus.FAILED
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
    follow = _finish(task, lease, status=status, error=error, outcome=outcome, retry_in=retry_in,
                     duration_ms=int((time.monotonic() - began) * 1000))
    return status, follow


def _finish(task: RequestTask, lease: uuid.UUID, *, status: str, error: str, outcome: dict,
            retry_in: float | None, duration_ms: int) -> int | None:
    with transaction.atomic():
        current = RequestTask.objects.select_for_update().get(pk=task.pk)
        if current.lease != lease:
            return None  # the watchdog handed this node to another run meanwhile; that one reports
        now = timezone.now()
        current.status = status
        current.error = error[:4000]
        current.duration_ms = duration_ms
        current.heartbeat_at = now
        current.lease = None
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
        keep = status == TaskStatus.DONE and _inline_queue.get() is None
        return request_advance(request_id=current.request_id, keep_one=keep)


def request_advance(*, request_id: uuid.UUID, keep_one: bool = False) -> int | None:
    """Queue the nodes whose dependencies are done; close the request when all are.

    With ``keep_one`` one ready node is queued but not sent; its id is returned for the caller
    to run next.
    """
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request_id)
        if request.status != RequestStatus.RUNNING:
            return None
        tasks = list(request.tasks.all())
        by_key = {t.key: t for t in tasks}
        failed = [t for t in tasks if t.status == TaskStatus.FAILED]
        if failed:
            request.status = RequestStatus.NEEDS_ATTENTION
            request.attention_reason = "; ".join(f"{t.key}: {t.error.splitlines()[0][:300]}" for t in failed)
            request.save(update_fields=["status", "attention_reason"])
            event_add(request, "needs_attention", request.attention_reason)
            return None
        ready = [
            t for t in tasks
            if t.status == TaskStatus.PENDING and all(by_key[d].status == TaskStatus.DONE for d in t.depends_on)
        ]
        now = timezone.now()
        for t in ready:
            t.status = TaskStatus.QUEUED
            t.queued_at = now
            t.save(update_fields=["status", "queued_at"])
        kept = ready[0].pk if keep_one and ready else None
        dispatch([t.pk for t in ready if t.pk != kept])
        if all(t.status == TaskStatus.DONE for t in tasks):
            from dsr.services import request_complete

            request_complete(request=request)
        return kept


# --- phases -----------------------------------------------------------------------------------

def _connector(request: DataSubjectRequest, store: StoreSpec):
    context = {"request_id": str(request.id), "profile_id": str(request.profile_id or ""),
               "workspace_id": request.workspace_id}
    if store.type == "mamoru":
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
    collection = graph.nodes[task.node]
    return request, graph, collection, graph.stores[collection.store]


def phase_access(task: RequestTask) -> dict:
    request, graph, collection, store = _parts(task)
    inputs = _node_inputs(request, graph, task.node)
    name = _access_name(task.node)
    if not inputs and store.type != "mamoru":
        # No identity and no parent value leads here: searched, nothing to find (not an error).
        path, count = files.write_rows(request_id=request.id, dek_id=request.data_key_id, name=name, rows=[])
    else:
        with _connector(request, store) as connector:
            # Streamed: rows go from the store to the encrypted file chunk by chunk.
            path, count = files.write_rows(request_id=request.id, dek_id=request.data_key_id, name=name,
                                           rows=connector.retrieve(collection, inputs))
    return {"rows_found": count, "result_path": str(path), "input_fields": sorted(inputs)}


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


def _identifying_fields(collection: CollectionSpec) -> list[FieldSpec]:
    return [f for f in collection.fields if f.effective_strategy and not strategy_get(f.effective_strategy).keeps_value]


def phase_verify(task: RequestTask) -> dict:
    """Query the store again and check nothing identifying of the subject is left."""
    request, graph, collection, store = _parts(task)
    originals = _originals(request, task.node)
    pk = collection.primary_key
    by_key = {tuple(str(r.get(k)) for k in pk): r for r in originals} if pk else {}
    # E-mail and phone seeds only: short customer ids would match unrelated numbers.
    seed_values = {str(v).lower() for kind, values in request_seeds(request).items()
                   if kind in {"email", "phone"} for v in values}
    inputs = _node_inputs(request, graph, task.node)
    current: list[dict] = []
    if inputs or store.type == "mamoru":
        with _connector(request, store) as connector:
            current = list(connector.retrieve(collection, inputs))
    current = json.loads(json.dumps(current, default=str))  # compare as stored in the access file
    problems: list[str] = []
    retained = {f.name for f in collection.fields if f.effective_strategy and strategy_get(f.effective_strategy).keeps_value}
    for row in current:
        original = by_key.get(tuple(str(row.get(k)) for k in pk)) if pk else None
        if original is None:
            problems.append("a row matching the subject appeared after the access phase")
            continue
        plan = row_plan(collection=collection, row=original, secret=_secret(request), node=task.node)
        if plan is not None and plan.delete:
            problems.append("a row planned for deletion is still present")
            continue
        for f in _identifying_fields(collection):
            if f.name in row and row[f.name] is not None and row[f.name] == original.get(f.name):
                problems.append(f"field {f.name} still holds its original value")
        for name, value in row.items():
            if name in retained or name == "_key" or value is None:
                continue
            if str(value).lower() in seed_values and (name not in pk):
                problems.append(f"field {name} still holds one of the subject's identities")
    if problems:
        raise NodeFailed(f"{ERR_LEFTOVER} in {task.node}: " + "; ".join(sorted(set(problems))))
    return {"rows_found": len(current), "rows_changed": 0, "verified": True,
            "retained_fields": sorted(retained)}


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
    """Requeue nodes left behind by dead workers or lost messages; return how many."""
    now = timezone.now()
    stale_after = stale_after if stale_after is not None else timedelta(
        seconds=getattr(settings, "MAMORU_DSR_NODE_TIMEOUT_SECONDS", 600))
    lost_after = lost_after if lost_after is not None else timedelta(
        seconds=getattr(settings, "MAMORU_DSR_LOST_MESSAGE_SECONDS", 300))
    requeued: list[int] = []
    with transaction.atomic():
        # Only the task rows, and skip rows a live worker holds: those are not stuck.
        stuck = lock_rows(
            RequestTask.objects.filter(
                request__status=RequestStatus.RUNNING, status=TaskStatus.RUNNING,
                heartbeat_at__lte=now - stale_after,
            ),
            skip_locked=True,
        )
        for task in stuck:
            task.status = TaskStatus.QUEUED if task.attempts < task.max_attempts else TaskStatus.FAILED
            task.lease = None
            task.queued_at = now
            if task.status == TaskStatus.FAILED:
                task.error = f"worker lost {task.attempts} times; attempt budget used up"
            task.save(update_fields=["status", "lease", "queued_at", "error"])
            event_add(task.request, "node_requeued", f"{task.key}: worker stopped mid-node; requeued")
            if task.status == TaskStatus.QUEUED:
                requeued.append(task.pk)
        lost = RequestTask.objects.filter(
            request__status=RequestStatus.RUNNING, status=TaskStatus.QUEUED, queued_at__lte=now - lost_after,
        ).exclude(pk__in=requeued)
        requeued += list(lost.values_list("pk", flat=True))
        waiting = RequestTask.objects.filter(
            request__status=RequestStatus.RUNNING, status=TaskStatus.RETRY_WAIT,
            next_attempt_at__lte=now - lost_after,
        )
        requeued += list(waiting.values_list("pk", flat=True))
        dispatch(requeued)
    for request_id in set(RequestTask.objects.filter(pk__in=requeued).values_list("request_id", flat=True)) | set(
        RequestTask.objects.filter(status=TaskStatus.FAILED, request__status=RequestStatus.RUNNING)
        .values_list("request_id", flat=True)
    ):
        request_advance(request_id=request_id)
    return len(requeued)
