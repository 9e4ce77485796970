"""The audit log: django-auditlog entries extended with outcome, reason, fields and a hash chain.

``AUDITLOG_LOGENTRY_MODEL = "audit.AuditEntry"`` makes auditlog write change entries here too, so
reads and changes share one chain.
"""

from __future__ import annotations

from auditlog.models import AbstractLogEntry
from django.conf import settings
from django.db import models, transaction
from django.utils.translation import gettext_lazy as _


class Outcome(models.TextChoices):
    ALLOWED = "allowed", _("Allowed")
    DENIED = "denied", _("Denied")


class AuditEntry(AbstractLogEntry):
    # Every read of personal data inserts a row here, so each index costs on the hot path. The
    # inherited single-column indexes nobody filters on alone (content type, object id, action,
    # correlation id, actor — covered by actor+timestamp) are dropped by redeclaring the fields.
    content_type = models.ForeignKey(
        "contenttypes.ContentType", on_delete=models.CASCADE, related_name="+",
        verbose_name=_("content type"), db_index=False,
    )
    object_id = models.BigIntegerField(blank=True, null=True, verbose_name=_("object id"))
    action = models.PositiveSmallIntegerField(choices=AbstractLogEntry.Action.choices, verbose_name=_("action"))
    cid = models.CharField(max_length=255, blank=True, null=True, verbose_name=_("Correlation ID"))  # noqa: DJ001 - as auditlog
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, blank=True, null=True, related_name="+",
        verbose_name=_("actor"), db_index=False,
    )
    seq = models.BigIntegerField(_("sequence"), unique=True, null=True, editable=False)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    entry_hash = models.CharField(max_length=64, blank=True, editable=False)
    outcome = models.CharField(_("outcome"), max_length=8, choices=Outcome.choices, default=Outcome.ALLOWED)
    reason = models.CharField(_("reason"), max_length=500, blank=True, default="")
    fields = models.JSONField(_("fields"), default=list, blank=True, help_text=_("Names only, never values."))
    workspace_id = models.BigIntegerField(null=True, blank=True, db_index=True)

    class Meta(AbstractLogEntry.Meta):
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        ordering = ["-seq"]
        indexes = [models.Index(fields=["actor", "timestamp"])]

    def save(self, *args, **kwargs):
        # Every insert, including auditlog's own change entries, joins the chain in its transaction.
        if self._state.adding and self.seq is None:
            from audit.chain import chain_seal

            with transaction.atomic(savepoint=False):
                chain_seal([self])
                return super().save(*args, **kwargs)
        return super().save(*args, **kwargs)


class ChainHead(models.Model):
    """The newest sealed position of the chain; its row lock serialises sealing."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"chain head at seq {self.seq}"


from audit.models_exports import AnomalyAlert, AnomalyRule, AuditExport, ExportStatus  # noqa: E402,F401
