"""The audit log: django-auditlog entries extended with outcome, reason, fields and a hash chain.

``AUDITLOG_LOGENTRY_MODEL = "audit.AuditEntry"`` makes auditlog write change entries here too, so
reads and changes share one chain.
"""

from __future__ import annotations

from auditlog.models import AbstractLogEntry, LogEntryManager
from django.conf import settings
from django.db import models, transaction
from django.utils.translation import gettext_lazy as _


class Outcome(models.TextChoices):
    ALLOWED = "allowed", _("Allowed")
    DENIED = "denied", _("Denied")


class AuditEntryImmutable(Exception):
    """Raised on any attempt to change or delete a sealed audit entry through the ORM."""


# The chain's own bookkeeping: everything else concrete on AuditEntry is sealed (audit.chain).
CHAIN_FIELDS = frozenset({"id", "prev_hash", "entry_hash"})
CHAIN_VERSION = 2  # 1: the pre-2026-12 payload (a subset of the columns); 2: every concrete column


class AuditEntryQuerySet(models.QuerySet):
    """No bulk path may change or remove entries (retention, redaction, auditlog_flush ...)."""

    def update(self, **kwargs):
        raise AuditEntryImmutable("audit entries are append-only; QuerySet.update() is refused")

    def delete(self):
        raise AuditEntryImmutable("audit entries are append-only; QuerySet.delete() is refused")

    delete.queryset_only = True


class AuditEntry(AbstractLogEntry):
    # Every read of personal data inserts a row here, so each index costs on the hot path. The
    # inherited single-column indexes nobody filters on alone (content type, object id, action,
    # correlation id, actor — covered by actor+timestamp) are dropped by redeclaring the fields.
    # Neither foreign key may change a sealed row: deleting a user or a content type leaves the
    # entry as it was sealed (the id stays as a historical reference; actor_email names the person).
    content_type = models.ForeignKey(
        "contenttypes.ContentType", on_delete=models.DO_NOTHING, related_name="+",
        verbose_name=_("content type"), db_index=False, db_constraint=False,
    )
    object_id = models.BigIntegerField(blank=True, null=True, verbose_name=_("object id"))
    action = models.PositiveSmallIntegerField(choices=AbstractLogEntry.Action.choices, verbose_name=_("action"))
    cid = models.CharField(max_length=255, blank=True, null=True, verbose_name=_("Correlation ID"))  # noqa: DJ001 - as auditlog
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, blank=True, null=True, related_name="+",
        verbose_name=_("actor"), db_index=False, db_constraint=False,
    )
    # ``seq`` is the global order (unique, increasing within each partition, gaps allowed);
    # ``partition``/``pseq`` is the entry's place in its partition chain (contiguous from 1).
    seq = models.BigIntegerField(_("sequence"), unique=True, null=True, editable=False)
    partition = models.PositiveSmallIntegerField(default=1, editable=False)
    pseq = models.BigIntegerField(null=True, editable=False)
    chain_version = models.PositiveSmallIntegerField(default=CHAIN_VERSION, editable=False)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    entry_hash = models.CharField(max_length=64, blank=True, editable=False)
    outcome = models.CharField(_("outcome"), max_length=8, choices=Outcome.choices, default=Outcome.ALLOWED)
    reason = models.CharField(_("reason"), max_length=500, blank=True, default="")
    fields = models.JSONField(_("fields"), default=list, blank=True, help_text=_("Names only, never values."))
    workspace_id = models.BigIntegerField(null=True, blank=True, db_index=True)

    objects = LogEntryManager.from_queryset(AuditEntryQuerySet)()

    class Meta(AbstractLogEntry.Meta):
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["actor", "timestamp"]),
            # Empty unless someone inserted rows outside the chain: lets verification find them fast.
            models.Index(fields=["id"], condition=models.Q(pseq__isnull=True), name="audit_entry_unsealed"),
        ]
        constraints = [models.UniqueConstraint(fields=["partition", "pseq"], name="audit_entry_partition_pseq")]

    def save(self, *args, **kwargs):
        # Append-only: an entry is written once. Every insert (auditlog's own change entries too)
        # joins the chain in its transaction, sealed in _do_insert, i.e. after every pre_save
        # receiver (auditlog's request context fills actor, address, port there) has run.
        if not self._state.adding or self.entry_hash:
            raise AuditEntryImmutable("audit entries are append-only; a sealed entry cannot be saved again")
        with transaction.atomic(using=kwargs.get("using"), savepoint=False):
            return super().save(*args, **kwargs)

    def _do_insert(self, manager, using, fields, returning_fields, raw):
        from audit.chain import chain_seal

        chain_seal([self], using=using)  # the last step before the INSERT: seal what is stored
        return super()._do_insert(manager, using, fields, returning_fields, raw)

    def delete(self, *args, **kwargs):
        raise AuditEntryImmutable("audit entries are append-only; they cannot be deleted")


class ChainHead(models.Model):
    """The newest sealed position of one partition chain (``id`` = partition). Its row lock
    serialises sealing within the partition only; writers take any free partition."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)  # the partition's last pseq
    hash = models.CharField(max_length=64, default="0" * 64)
    last_seq = models.BigIntegerField(default=0)  # global seq of that entry
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"chain head of partition {self.id} at seq {self.seq}"


from audit.models_exports import AnomalyAlert, AnomalyRule, AuditExport, ExportStatus  # noqa: E402,F401
