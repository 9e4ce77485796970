"""Who may see what: the one place that answers, used by the API, the admin and exports.

Deny by default. A profile someone may not see is absent from their lists and a 404 on its own.

Access sits below the subjects app, whose API and admin ask it: it knows workspaces and profiles
by model label through Django's app registry, as ``contrib.auth`` knows the user model, and never
imports ``governance.subjects``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import apps
from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user

if TYPE_CHECKING:
    from governance.subjects.models import Profile, Workspace

WORKSPACE_MODEL = "subjects.Workspace"
PROFILE_MODEL = "subjects.Profile"

VIEW_ALL = "subjects.view_profile"
REVEAL_ALL = "subjects.reveal_profile_pii"
VIEW_WORKSPACE = "subjects.view_workspace_profiles"
REVEAL_WORKSPACE = "subjects.reveal_workspace_pii"


def _authenticated(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and user.is_active)


def workspaces_visible_to(user) -> QuerySet[Workspace]:
    Workspace = apps.get_model(WORKSPACE_MODEL)  # noqa: N806 - a model class
    if not _authenticated(user):
        return Workspace.objects.none()
    if user.has_perm(VIEW_ALL):
        return Workspace.objects.all()
    return get_objects_for_user(user, VIEW_WORKSPACE, klass=Workspace, accept_global_perms=False)


def may_list_profiles(user) -> bool:
    """Endpoint-level: may this user see any profile at all (else 403, not an empty list)?"""
    if not _authenticated(user):
        return False
    return user.has_perm(VIEW_ALL) or workspaces_visible_to(user).exists()


def profiles_visible_to(user, queryset: QuerySet[Profile] | None = None) -> QuerySet[Profile]:
    queryset = apps.get_model(PROFILE_MODEL).objects.all() if queryset is None else queryset
    if not _authenticated(user):
        return queryset.none()
    if user.has_perm(VIEW_ALL):
        return queryset
    return queryset.filter(workspace__in=workspaces_visible_to(user))


def can_view_profile(user, profile: Profile) -> bool:
    if not _authenticated(user):
        return False
    return user.has_perm(VIEW_ALL) or user.has_perm(VIEW_WORKSPACE, profile.workspace)


def can_reveal(user, profile: Profile) -> bool:
    if not can_view_profile(user, profile):
        return False
    return user.has_perm(REVEAL_ALL) or user.has_perm(REVEAL_WORKSPACE, profile.workspace)
