"""What a request covers: its workspaces (brands), the stores searched, what was kept and why.

A request filed for one brand searches that workspace's stores plus the shared ones; a request
filed without choosing a brand (``all_workspaces``) searches every store and every workspace's
profile of the person. The status page and the final e-mail say which (docs/portal.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dsr.models import DataSubjectRequest, RequestType, TaskPhase
from governance.datamap.spec import StoreSpec
from governance.subjects.models import Profile, Workspace

MAMORU = "mamoru"


@dataclass
class Kept:
    store: str
    what: str
    why: str
    retention: str = ""


@dataclass
class Coverage:
    all_workspaces: bool
    brands: list[str]
    other_brands: list[str] = field(default_factory=list)  # workspaces the request does not cover
    stores: list[dict] = field(default_factory=list)  # {"name", "found"}
    kept: list[Kept] = field(default_factory=list)
    planned: bool = False


def request_workspaces(*, request: DataSubjectRequest) -> list[Workspace]:
    if request.all_workspaces:
        return list(Workspace.objects.order_by("name"))
    return [request.workspace]


def request_profiles(*, request: DataSubjectRequest) -> list[Profile]:
    """The person's profiles the request covers: its own, and with ``all_workspaces`` the profile
    holding the verified e-mail in every other workspace."""
    profiles = [request.profile] if request.profile_id else []
    if request.all_workspaces and request.email:
        from governance.subjects.selectors import profile_get_by_identity

        for workspace in Workspace.objects.exclude(pk=request.workspace_id).order_by("name"):
            profile = profile_get_by_identity(workspace=workspace, kind="email", value=request.email)
            if profile is not None:
                profiles.append(profile)
    return profiles


def request_store_scope(*, request: DataSubjectRequest) -> str | None:
    """The workspace slug whose stores the request searches (None: every workspace's)."""
    return None if request.all_workspaces else request.workspace.slug


def stores_for_request(specs: list[StoreSpec], *, request: DataSubjectRequest) -> list[StoreSpec]:
    scope = request_store_scope(request=request)
    return [s for s in specs if s.serves(scope)]


def request_coverage(*, request: DataSubjectRequest) -> Coverage:
    """What the request covered (or will cover, before it is planned) — no personal data."""
    from dsr.execution import plan_specs

    covered = request_workspaces(request=request)
    coverage = Coverage(
        all_workspaces=request.all_workspaces, brands=[w.name for w in covered],
        other_brands=list(Workspace.objects.exclude(pk__in=[w.pk for w in covered])
                          .order_by("name").values_list("name", flat=True)),
    )
    specs = plan_specs(request) if (request.plan or {}).get("stores") else []
    if not specs:
        from governance.datamap.selectors import datamap_specs

        specs = stores_for_request([s for s in datamap_specs() if s.type != MAMORU], request=request)
    else:
        coverage.planned = True
    found = {t.node for t in request.tasks.filter(phase=TaskPhase.ACCESS, rows_found__gt=0)}
    for store in specs:
        if store.type == MAMORU:
            continue
        coverage.stores.append({
            "name": store.name or store.key,
            "found": any(c.address in found for c in store.collections),
        })
    if request.request_type != RequestType.ERASURE:
        return coverage
    for store in specs:
        for collection in store.collections:
            # Identities of the Mamoru profile go with the profile (crypto-shredded): not kept.
            if collection.address not in found or collection.address == f"{MAMORU}.identities":
                continue
            groups: dict[tuple, list[str]] = {}
            for f in collection.fields:
                if f.effective_strategy == "retain":
                    groups.setdefault((f.legal_basis, f.retention), []).append(f.description or f.name)
            for (why, retention), names in groups.items():
                coverage.kept.append(Kept(store=store.name or store.key,
                                          what=f"{collection.name}: {', '.join(names)}",
                                          why=why, retention=retention))
    return coverage
