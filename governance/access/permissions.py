"""DRF permission and filter classes built on ``governance.access.policy``."""

from __future__ import annotations

from rest_framework import filters, permissions

from governance.access import policy


class CanListProfiles(permissions.BasePermission):
    """403 for roles that see no profiles at all (marketing, auditor); objects are filtered."""

    message = "Your role has no access to profiles."

    def has_permission(self, request, view) -> bool:
        return policy.may_list_profiles(request.user)

    def has_object_permission(self, request, view, obj) -> bool:
        return policy.can_view_profile(request.user, obj)


class VisibleProfilesFilter(filters.BaseFilterBackend):
    """Restrict any profile queryset to what the user may see (so hidden objects 404)."""

    def filter_queryset(self, request, queryset, view):
        return policy.profiles_visible_to(request.user, queryset)
