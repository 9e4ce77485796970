"""Data subjects: workspaces (brands), profiles and their identities."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from governance.crypto.fields import BlindIndexField, EncryptedTextField


class Jurisdiction(models.TextChoices):
    EU = "EU", _("European Union (GDPR)")
    JP = "JP", _("Japan (APPI)")
    US_CA = "US-CA", _("California (CCPA/CPRA)")
    US = "US", _("United States (other)")
    OTHER = "OTHER", _("Other")


class Workspace(models.Model):
    """A brand or business unit whose customer profiles are kept apart."""

    slug = models.SlugField(_("slug"), unique=True, max_length=64)
    name = models.CharField(_("name"), max_length=200)
    default_jurisdiction = models.CharField(
        _("default jurisdiction"), max_length=8, choices=Jurisdiction.choices, default=Jurisdiction.EU
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("workspace")
        verbose_name_plural = _("workspaces")
        permissions = [
            ("view_workspace_profiles", _("Can view the profiles of this workspace")),
            ("reveal_workspace_pii", _("Can reveal personal data of this workspace's profiles")),
        ]

    def __str__(self) -> str:
        return self.name


class ProfileStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    MERGED = "merged", _("Merged into another profile")
    SHREDDED = "shredded", _("Erased (crypto-shredded)")


SENSITIVE_PROFILE_FIELDS = ("full_name", "kana_name", "address", "birth_date", "postal_code")


class Profile(models.Model):
    """A person (data subject). Attributes are encrypted under the profile's own data key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.PROTECT, related_name="profiles", verbose_name=_("workspace")
    )
    jurisdiction = models.CharField(
        _("jurisdiction"), max_length=8, choices=Jurisdiction.choices, default=Jurisdiction.EU
    )
    status = models.CharField(
        _("status"), max_length=16, choices=ProfileStatus.choices, default=ProfileStatus.ACTIVE,
        db_index=True,
    )
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_profiles"
    )
    data_key_id = models.UUIDField(_("data key"), editable=False)
    locale = models.CharField(_("preferred language"), max_length=8, blank=True, default="")

    full_name = EncryptedTextField(_("name"))
    kana_name = EncryptedTextField(_("name (kana)"))
    address = EncryptedTextField(_("address"))
    postal_code = EncryptedTextField(_("postal code"))
    birth_date = EncryptedTextField(_("birth date"))
    # Exact search by name (governance.subjects.identities.name_index), blank without a name.
    name_index = BlindIndexField(_("name blind index"), blank=True, default="")
    kana_name_index = BlindIndexField(_("kana name blind index"), blank=True, default="")

    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    shredded_at = models.DateTimeField(_("erased at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("profile")
        verbose_name_plural = _("profiles")
        permissions = [("reveal_profile_pii", _("Can reveal personal data of any profile"))]
        indexes = [models.Index(fields=["workspace", "status"])]

    def __str__(self) -> str:
        # Never personal data: this string ends up in audit entries and admin breadcrumbs.
        return f"Profile {str(self.id)[:8]}"


class IdentityKind(models.TextChoices):
    EMAIL = "email", _("E-mail")
    PHONE = "phone", _("Phone")
    CUSTOMER_ID = "customer_id", _("Customer id (per store)")
    BROWSER_ID = "browser_id", _("Anonymous browser id")


class Identity(models.Model):
    """A way to recognise a profile: stored encrypted, found through its blind index."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="identities")
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(_("kind"), max_length=16, choices=IdentityKind.choices)
    namespace = models.CharField(
        _("namespace"), max_length=64, blank=True, default="",
        help_text=_("For customer ids: the store that issued it (e.g. 'shop', 'stripe')."),
    )
    value = EncryptedTextField(_("value"))
    value_index = BlindIndexField(_("blind index"))
    data_key_id = models.UUIDField(editable=False)
    verified = models.BooleanField(_("verified"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("identity")
        verbose_name_plural = _("identities")
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "kind", "namespace", "value_index"], name="identity_unique_per_workspace"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} identity of {self.profile_id}"


class ProfileMerge(models.Model):
    """Record of two profiles found to be one person (名寄せ): what moved where, and why."""

    survivor = models.ForeignKey(Profile, on_delete=models.PROTECT, related_name="merges_received")
    merged_profile_id = models.UUIDField(db_index=True)
    identities_moved = models.PositiveIntegerField(default=0)
    attributes_taken = models.JSONField(default=list, help_text=_("Attribute names copied (never values)."))
    reason = models.CharField(max_length=200)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("profile merge")
        verbose_name_plural = _("profile merges")

    def __str__(self) -> str:
        return f"{self.merged_profile_id} → {self.survivor_id}"
