"""DRF permission and filter classes built on ``governance.access.policy``."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import filters, permissions, status

from governance.access import policy
from governance.access.scopes import READ, user_has_scope
from governance.api.errors import DomainError


class TokenScopeMissing(DomainError):
    """403 ``token_scope``: the API token lacks a scope the request needs, whatever its user's role."""

    status_code = status.HTTP_403_FORBIDDEN
    code = "token_scope"
    title = gettext_lazy("This token's scopes do not allow this request.")


class CanListProfiles(permissions.BasePermission):
    """403 for roles that see no profiles at all (marketing, auditor); objects are filtered."""

    message = "Your role has no access to profiles."

    def has_permission(self, request, view) -> bool:
        if policy.may_list_profiles(request.user):
            return True
        if not user_has_scope(request.user, READ):
            # the role may well see profiles: it is the token that cannot, so say so
            raise TokenScopeMissing(_("This request needs a token with the 'read' scope."))
        return False

    def has_object_permission(self, request, view, obj) -> bool:
        return policy.can_view_profile(request.user, obj)


class VisibleProfilesFilter(filters.BaseFilterBackend):
    """Restrict any profile queryset to what the user may see (so hidden objects 404)."""

    def filter_queryset(self, request, queryset, view):
        return policy.profiles_visible_to(request.user, queryset)
