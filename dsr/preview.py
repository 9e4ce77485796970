"""Erasure preview: a dry run of an erasure request, shown to the DPO before approval.

Per collection: what the data map's strategies do (delete the row, mask a field and how, keep it
under a legal hold) and, once the access phase has found the person's rows, how many rows would
be deleted, masked or left alone and which fields change in how many rows, with a few example
rows. Nothing is written to any store: the plan is :func:`dsr.masking.row_plan` applied to the
access results, exactly what the erasure phase will do.

Values are masked for everybody by default; staff allowed to reveal personal data of the
request's workspace may see them after giving a reason (:func:`erasure_preview_reveal`, audited).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from dsr import files
from dsr.execution import _access_name, plan_current_specs, plan_graph
from dsr.masking import ROW_DELETE, row_plan, strategy_get
from dsr.models import DataSubjectRequest, RequestTask, RequestType, TaskPhase, TaskStatus
from dsr.services import DsrInvalid
from governance.access.masking import mask_value
from governance.api.errors import DomainError
from governance.crypto.envelope import CryptoError
from governance.datamap.graph import DataMapGraph
from governance.datamap.spec import CollectionSpec, FieldSpec
from governance.datamap.taxonomy import category_label

EXAMPLE_ROWS = 5
MIN_REASON = 10
STRATEGY_LABELS = {
    "null": _("set to empty (NULL)"),
    "hash": _("replaced by a keyed hash"),
    "hmac": _("replaced by a keyed hash"),
    "random_rewrite": _("replaced by random text"),
    ROW_DELETE: _("the whole row is deleted"),
    "retain": _("kept (legal hold)"),
}
ERR_TYPE = "Only erasure requests have an erasure preview."
ERR_REASON = "Give a reason of at least 10 characters to see the values."
ERR_FORBIDDEN = "You may not reveal personal data of this workspace."


class PreviewForbidden(DomainError):
    status_code = 403
    code = "reveal_forbidden"
    title = _("You may not reveal these personal data.")


class Action:
    DELETE = "delete"
    MASK = "mask"
    SHRED = "shred"
    KEEP = "keep"


@dataclass
class FieldPlan:
    name: str
    label: str
    strategy: str
    how: str
    changes: int | None = None  # rows in which this field changes (None: access phase not run)


@dataclass
class ExampleRow:
    key: str
    action: str
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # field, before, after


@dataclass
class CollectionPreview:
    address: str
    store_name: str
    description: str
    action: str
    fields: list[FieldPlan]
    searched: bool = False
    rows_found: int = 0
    rows_delete: int = 0
    rows_mask: int = 0
    rows_unchanged: int = 0
    examples: list[ExampleRow] = field(default_factory=list)


@dataclass
class ErasurePreview:
    request_id: str
    access_ran: bool
    revealed: bool
    collections: list[CollectionPreview]
    #: The access results were deleted (the request finished: its files are removed, its key shredded).
    results_gone: bool = False

    @property
    def totals(self) -> dict[str, int]:
        return {
            "rows_found": sum(c.rows_found for c in self.collections),
            "rows_delete": sum(c.rows_delete for c in self.collections),
            "rows_mask": sum(c.rows_mask for c in self.collections),
            "rows_unchanged": sum(c.rows_unchanged for c in self.collections),
        }

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return {**asdict(self), "totals": self.totals}


def _graph(request: DataSubjectRequest) -> DataMapGraph:
    """The request's plan when it has one, else the data map it would be planned with now."""
    if (request.plan or {}).get("stores"):
        return plan_graph(request)
    return DataMapGraph(plan_current_specs(request=request))


def _strategy_how(name: str) -> str:
    label = STRATEGY_LABELS.get(name)
    return str(label) if label is not None else strategy_get(name).verbose_name or name


def _collection_action(collection: CollectionSpec, store_type: str) -> str:
    strategies = [f.effective_strategy for f in collection.fields if f.effective_strategy]
    if not strategies:
        return Action.KEEP
    if store_type == "mamoru" and collection.name == "profile":
        return Action.SHRED
    retained = any(strategy_get(s).keeps_value for s in strategies)
    if any(strategy_get(s).deletes_row for s in strategies) and not retained:
        return Action.DELETE
    if all(strategy_get(s).keeps_value for s in strategies):
        return Action.KEEP
    return Action.MASK


def _field_plans(collection: CollectionSpec) -> list[FieldPlan]:
    plans = []
    strategies = [f.effective_strategy for f in collection.fields if f.effective_strategy]
    retained = any(strategy_get(s).keeps_value for s in strategies)
    deleted = not retained and any(strategy_get(s).deletes_row for s in strategies)
    for f in collection.fields:
        strategy = f.effective_strategy
        if not strategy:
            continue
        if deleted and not strategy_get(strategy).deletes_row:
            how = str(_("deleted with the row"))
        elif strategy_get(strategy).deletes_row and retained:
            # a legal hold on the row: delete_row falls back to null (see row_plan)
            how = str(_("set to empty (NULL): the row is kept for a legal hold"))
        else:
            how = _strategy_how(strategy)
        plans.append(FieldPlan(name=f.name, label=category_label(f.category) if f.category else f.name,
                               strategy=strategy, how=how))
    return plans


def _kind(f: FieldSpec | None) -> str:
    category = getattr(f, "category", "") or ""
    if category.startswith("user.contact.email"):
        return "email"
    if category.startswith("user.contact.phone"):
        return "phone"
    return ""


def _shown(value, f: FieldSpec | None, *, reveal: bool) -> str:
    if value is None:
        return "NULL"
    if reveal:
        return str(value)
    return mask_value(str(value), kind=_kind(f)) or ""


def _access_done(request: DataSubjectRequest) -> set[str]:
    return set(RequestTask.objects.filter(request=request, phase=TaskPhase.ACCESS, status=TaskStatus.DONE)
               .values_list("node", flat=True))


def erasure_preview(*, request: DataSubjectRequest, reveal: bool = False,
                    examples: int = EXAMPLE_ROWS) -> ErasurePreview:
    """What the erasure would change, per collection (values masked unless ``reveal``)."""
    if request.request_type != RequestType.ERASURE:
        raise DsrInvalid(ERR_TYPE, code="not_an_erasure")
    graph = _graph(request)
    done = _access_done(request)
    try:
        secret = bytes.fromhex(request.masking_secret) if request.masking_secret else b""
    except CryptoError:
        secret = b""
    gone = bool(done) and not secret
    previews = []
    for address in graph.access_order():
        collection = graph.nodes[address]
        store = graph.stores[collection.store]
        preview = CollectionPreview(
            address=address, store_name=store.name or store.key, description=collection.description,
            action=_collection_action(collection, store.type), fields=_field_plans(collection),
        )
        if address in done and secret and not gone:
            try:
                rows = list(files.read_rows(request_id=request.id, dek_id=request.data_key_id,
                                            name=_access_name(address)))
            except (OSError, CryptoError, files.SealedFileDamaged):
                gone = True
                rows = []
        else:
            rows = None
        if rows is not None and not gone:
            preview.searched = True
            counts = {p.name: 0 for p in preview.fields}
            for row in rows:
                row = {k: v for k, v in row.items() if not k.startswith("_")}
                preview.rows_found += 1
                plan = row_plan(collection=collection, row=row, secret=secret, node=address)
                if plan is None:
                    preview.rows_unchanged += 1
                    continue
                if plan.delete:
                    preview.rows_delete += 1
                else:
                    preview.rows_mask += 1
                    for name in plan.values:
                        counts[name] = counts.get(name, 0) + 1
                if len(preview.examples) < examples:
                    key = ", ".join(f"{k}={_shown(v, collection.field(k), reveal=reveal)}" for k, v in plan.key.items())
                    changes = [] if plan.delete else [
                        (name, _shown(row.get(name), collection.field(name), reveal=reveal),
                         _shown(value, collection.field(name), reveal=reveal))
                        for name, value in plan.values.items()
                    ]
                    preview.examples.append(ExampleRow(
                        key=key, action=Action.DELETE if plan.delete else Action.MASK, changes=changes))
            for fp in preview.fields:
                fp.changes = preview.rows_delete + counts.get(fp.name, 0) if fp.strategy != "retain" else 0
        previews.append(preview)
    if gone:
        for preview in previews:
            preview.searched, preview.examples = False, []
            preview.rows_found = preview.rows_delete = preview.rows_mask = preview.rows_unchanged = 0
            for fp in preview.fields:
                fp.changes = None
    return ErasurePreview(request_id=str(request.id), access_ran=bool(done) and not gone, revealed=reveal,
                          collections=previews, results_gone=gone)


def may_reveal(user, request: DataSubjectRequest) -> bool:
    """Staff who may reveal personal data of the request's workspace (governance.access roles)."""
    from governance.access.policy import REVEAL_ALL, REVEAL_WORKSPACE, can_reveal

    if not (getattr(user, "is_authenticated", False) and user.is_active):
        return False
    if request.profile_id:
        return can_reveal(user, request.profile)
    return user.has_perm(REVEAL_ALL) or user.has_perm(REVEAL_WORKSPACE, request.workspace)


def erasure_preview_reveal(*, request: DataSubjectRequest, actor, reason: str,
                           http_request=None) -> ErasurePreview:
    """The preview with values, for staff allowed to reveal, with a reason; audited either way."""
    from audit.models import Outcome
    from audit.services import access_record

    reason = (reason or "").strip()
    if len(reason) < MIN_REASON:
        raise DsrInvalid(ERR_REASON, code="reason_required")
    if not may_reveal(actor, request):
        access_record(actor=actor, obj=request, fields=["erasure_preview"], reason=reason,
                      outcome=Outcome.DENIED, request=http_request, via="admin:erasure_preview")
        raise PreviewForbidden(ERR_FORBIDDEN)
    with transaction.atomic():
        preview = erasure_preview(request=request, reveal=True)
        access_record(actor=actor, obj=request, fields=["erasure_preview"], reason=reason, request=http_request,
                      via="admin:erasure_preview")
    return preview
