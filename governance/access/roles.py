"""The five roles as Django groups, with their model permissions.

Patterns are ``app_label.codename`` globs. Apps that add models add their permissions here; the
groups are re-synced after every ``migrate`` (so new permissions reach the roles) and by
``seed_demo``. Support agents get no global profile permission: their access comes from
django-guardian object permissions on the workspaces they are assigned
(``access_workspace_assign``).
"""

from __future__ import annotations

from fnmatch import fnmatch
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from guardian.shortcuts import assign_perm, remove_perm

if TYPE_CHECKING:
    from governance.subjects.models import Workspace

DPO = "dpo"
PRIVACY_ANALYST = "privacy_analyst"
SUPPORT_AGENT = "support_agent"
MARKETING = "marketing"
AUDITOR = "auditor"

ROLE_LABELS = {
    DPO: _("DPO"),
    PRIVACY_ANALYST: _("Privacy analyst"),
    SUPPORT_AGENT: _("Support agent"),
    MARKETING: _("Marketing"),
    AUDITOR: _("Auditor"),
}

ROLE_PERMISSIONS: dict[str, list[str]] = {
    DPO: [
        "subjects.*", "access.*", "audit.view_*", "consent.*", "dsr.*", "datamap.*", "pii.*",
        "audit.export_audit", "audit.*_anomalyrule", "audit.change_anomalyalert",
        "crypto.view_datakey", "auth.view_user", "auth.view_group",
        # Staff accounts: remove a lost authenticator device (its owner enrols again at the next
        # login) and lift a login lockout.
        "otp_totp.view_totpdevice", "otp_totp.delete_totpdevice",
        "axes.view_accessattempt", "axes.delete_accessattempt", "axes.view_accessfailurelog",
    ],
    PRIVACY_ANALYST: [
        "subjects.view_profile", "subjects.view_workspace", "subjects.view_profilemerge",
        "consent.*", "dsr.view_*", "dsr.change_*", "dsr.add_*", "pii.view_*", "datamap.view_*",
        "pii.scan_text", "pii.ingest_profiles",
    ],
    SUPPORT_AGENT: ["subjects.view_workspace", "dsr.view_datasubjectrequest", "audit.export_audit"],
    MARKETING: ["consent.view_*", "consent.check_consent"],
    AUDITOR: ["audit.view_*", "audit.export_audit"],
}

# Object permissions a support agent receives on each assigned workspace.
SUPPORT_WORKSPACE_PERMS = ("subjects.view_workspace_profiles", "subjects.reveal_workspace_pii")


def _matching(patterns: list[str]) -> list[Permission]:
    perms = Permission.objects.select_related("content_type")
    return [
        p for p in perms
        if any(fnmatch(f"{p.content_type.app_label}.{p.codename}", pattern) for pattern in patterns)
        # Object-level workspace grants stay object-level for everyone but the DPO.
    ]


def roles_sync() -> dict[str, Group]:
    """Create the groups and give each exactly its role's permissions."""
    groups = {}
    with transaction.atomic():
        for role, patterns in ROLE_PERMISSIONS.items():
            group, _created = Group.objects.get_or_create(name=role)
            group.permissions.set(_matching(patterns))
            groups[role] = group
    return groups


def roles_sync_on_migrate(sender, using="default", **kwargs) -> None:
    """Sync the roles once per ``migrate``, after every app's permissions exist.

    Django creates each app's permissions in that app's own ``post_migrate`` (in INSTALLED_APPS
    order), so syncing on an early app's signal missed the permissions of the apps after it (a
    fresh install left the privacy analyst without ``pii.scan_text``). The last app with models
    is the last sender: by its turn every app's ``create_permissions`` has run.
    """
    from django.apps import apps

    if using != "default":
        return
    last = [config for config in apps.get_app_configs() if config.models_module is not None][-1]
    if getattr(sender, "label", "") != last.label:
        return
    roles_sync()


def dpo_users():
    """Active users with the DPO role and an e-mail address (who hears about alerts and failures)."""
    return get_user_model().objects.filter(groups__name=DPO, is_active=True).exclude(email="").distinct()


def dpo_emails() -> list[str]:
    """The addresses of :func:`dpo_users` (alerts, chain breaks)."""
    return sorted({u.email for u in dpo_users()})


def access_workspace_assign(*, user, workspace: Workspace) -> None:
    """Let a support agent see (and, with a reason, reveal) the profiles of one workspace."""
    for perm in SUPPORT_WORKSPACE_PERMS:
        assign_perm(perm, user, workspace)


def access_workspace_unassign(*, user, workspace: Workspace) -> None:
    for perm in SUPPORT_WORKSPACE_PERMS:
        remove_perm(perm, user, workspace)
