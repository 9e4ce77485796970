"""The key store: wrapped per-subject data keys (DEKs), kept in the ``keystore`` database alias."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _


class DataKey(models.Model):
    """A 256-bit data key wrapped (AES-256-GCM) under a master key.

    Destroying it (crypto-shredding) overwrites ``wrapped`` and keeps the row as a tombstone that
    records when the key was destroyed; every value encrypted under it is then unrecoverable,
    including in copies of the main database taken earlier.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kek_id = models.CharField(_("master key id"), max_length=32, db_index=True, blank=True)
    wrapped = models.BinaryField(_("wrapped key"), blank=True)
    owner = models.CharField(_("owner"), max_length=64, blank=True, help_text=_("e.g. subjects.profile"))
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = _("data key")
        verbose_name_plural = _("data keys")

    def __str__(self) -> str:
        return f"DataKey {self.id}"
