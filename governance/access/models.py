"""Object permissions (django-guardian, direct foreign keys) and hashed API tokens.

Workspaces are referred to by label: access sits below the subjects app (see ``policy``).
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase


class WorkspaceUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey("subjects.Workspace", on_delete=models.CASCADE)


class WorkspaceGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey("subjects.Workspace", on_delete=models.CASCADE)


TOKEN_PREFIX = "mmr_"


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 digest is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100)
    key_id = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    # What the token may do within its user's permissions (governance.access.scopes).
    scopes = models.JSONField(_("scopes"), default=list, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({TOKEN_PREFIX}{self.key_id}_…)"

    @property
    def scope_labels(self) -> str:
        from governance.access.scopes import TokenScope

        return ", ".join(str(TokenScope(s).label) for s in self.scopes if s in TokenScope.values)

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @classmethod
    def new_secret(cls) -> tuple[str, str]:
        key_id = secrets.token_hex(6)
        return key_id, f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
