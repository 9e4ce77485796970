"""Reads of profiles and identities."""

from __future__ import annotations

from django.db.models import QuerySet

from governance.crypto import envelope
from governance.crypto.blind_index import blind_index
from governance.subjects.identities import index_kind, normalize_identity
from governance.subjects.models import Identity, Profile, ProfileStatus, Workspace


def identity_index(*, kind: str, value: str, namespace: str = "", jurisdiction: str = "") -> str:
    normalized = normalize_identity(kind=kind, value=value, namespace=namespace, jurisdiction=jurisdiction)
    return blind_index(kind=index_kind(kind, namespace), value=normalized)


def profile_get_by_identity(
    *, workspace: Workspace, kind: str, value: str, namespace: str = "", jurisdiction: str = ""
) -> Profile | None:
    """Find the active profile with this identity (exact match through the blind index).

    National phone numbers are read for the workspace's default jurisdiction unless one is given.
    """
    index = identity_index(
        kind=kind, value=value, namespace=namespace,
        jurisdiction=jurisdiction or workspace.default_jurisdiction,
    )
    identity = (
        Identity.objects.select_related("profile")
        .filter(workspace=workspace, kind=kind, namespace=namespace, value_index=index)
        .first()
    )
    if identity is None or identity.profile.status != ProfileStatus.ACTIVE:
        return None
    return identity.profile


def profiles_with_identities(queryset: QuerySet[Profile]) -> QuerySet[Profile]:
    return queryset.select_related("workspace").prefetch_related("identities")


def profiles_preload_keys(profiles: list[Profile]) -> None:
    """Unwrap the data keys of a page of profiles in one key-store query."""
    envelope.preload(p.data_key_id for p in profiles)
