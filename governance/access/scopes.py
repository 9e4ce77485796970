"""API token scopes: what a token may do, whatever more its user could.

A request authenticated by a token has the permissions of its user *within* the token's scopes.
The scopes are checked where every permission is checked (``user.has_perm`` through
:class:`TokenScopeBackend`), so a token without ``reveal`` cannot reveal even for a DPO; every
export also asks for ``export`` (:func:`user_has_scope`). Reads sent as POST (searches with
identities in the body) need only ``read``: what a request may do follows from the permissions it
uses, not from its method.

========  ==================================================================================
scope     permissions it lets through
========  ==================================================================================
read      ``view_*`` and ``check_*`` (lists, details, consent checks, reports on screen)
write     ``add_*``, ``change_*``, ``delete_*`` and other actions (ingest, scan, consent events,
          DSR decisions) outside the accounts apps
reveal    ``reveal_*`` (personal data in clear, with a reason)
export    ``export_*`` (audit and report exports, downloads)
admin     changes in the accounts apps (users, groups, tokens, second factors, lockouts)
========  ==================================================================================
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils.translation import gettext_lazy as _

READ, WRITE, REVEAL, EXPORT, ADMIN = "read", "write", "reveal", "export", "admin"


class TokenScope(models.TextChoices):
    READ = READ, _("Read")
    WRITE = WRITE, _("Write")
    REVEAL = REVEAL, _("Reveal personal data")
    EXPORT = EXPORT, _("Export")
    ADMIN = ADMIN, _("Administer accounts")


ALL_SCOPES = frozenset(TokenScope.values)
DEFAULT_SCOPES = (READ,)
# Apps whose changes administer who may do what.
ACCOUNT_APPS = frozenset({"auth", "access", "otp_totp", "axes", "guardian"})
SCOPES_ATTRIBUTE = "_mamoru_token_scopes"


def scope_for_permission(perm: str) -> str:
    """The scope a permission (``app_label.codename``) needs."""
    app_label, _dot, codename = perm.partition(".")
    if codename.startswith(("view_", "check_")):
        return READ
    if codename.startswith("reveal_"):
        return REVEAL
    if codename.startswith("export_"):
        return EXPORT
    if app_label in ACCOUNT_APPS:
        return ADMIN
    return WRITE


def scopes_normalise(scopes) -> list[str]:
    """Known scopes in their canonical order; unknown ones raise ``ValueError``."""
    wanted = set(scopes)
    unknown = wanted - ALL_SCOPES
    if unknown:
        raise ValueError(f"Unknown scope(s) {', '.join(sorted(unknown))}; known: {', '.join(TokenScope.values)}.")
    return [scope for scope in TokenScope.values if scope in wanted]


def user_limit_to_scopes(user, scopes) -> None:
    """Limit this request's ``user`` object to ``scopes`` (a token's); nothing is saved.

    A superuser's implicit "every permission" is kept only by a token with every scope: with fewer,
    the user has its roles' permissions, filtered by the scopes like anyone's.
    """
    scopes = frozenset(scopes)
    setattr(user, SCOPES_ATTRIBUTE, scopes)
    if user.is_superuser and scopes != ALL_SCOPES:
        user.is_superuser = False
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(cache, None)


def user_has_scope(user, scope: str) -> bool:
    """Does this request's user carry ``scope``? (Sessions carry every scope: roles limit them.)"""
    scopes = getattr(user, SCOPES_ATTRIBUTE, None)
    return scopes is None or scope in scopes


class TokenScopeBackend:
    """First authentication backend: denies, for a token's request, permissions outside its scopes.

    Raising ``PermissionDenied`` stops Django from asking the other backends (model and object
    permissions alike). It never grants anything and authenticates no one.
    """

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        scopes = getattr(user_obj, SCOPES_ATTRIBUTE, None)
        if scopes is not None and scope_for_permission(perm) not in scopes:
            raise PermissionDenied
        return False

    def has_module_perms(self, user_obj, app_label):
        return False
