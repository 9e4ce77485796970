"""Audit report exports and access anomalies (rules a DPO tunes, alerts they acknowledge).

Imported at the end of ``audit/models.py`` so the models belong to the ``audit`` app. ``__str__``
never contains personal data: it ends up in audit entries.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ExportStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class AuditExport(models.Model):
    """One export of a report: who asked for what, and (for background exports) the file."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    report = models.CharField(_("report"), max_length=64)
    format = models.CharField(_("format"), max_length=16)
    params = models.JSONField(_("filters"), default=dict, blank=True)
    locale = models.CharField(_("language"), max_length=8, default="en")
    streamed = models.BooleanField(
        _("streamed"), default=False, help_text=_("Sent directly in the response; no file is kept.")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=ExportStatus.choices, default=ExportStatus.PENDING,
        db_index=True,
    )
    rows_total = models.BigIntegerField(_("rows expected"), null=True, blank=True)
    rows_done = models.BigIntegerField(_("rows written"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    file_name = models.CharField(max_length=255, blank=True, default="")
    file_size = models.BigIntegerField(_("file size"), null=True, blank=True)
    # Set when the file is encrypted at rest (reports that hold personal data); destroying the key
    # makes the file unreadable.
    data_key_id = models.UUIDField(null=True, blank=True, editable=False)
    error = models.CharField(_("error"), max_length=500, blank=True, default="")
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("audit export")
        verbose_name_plural = _("audit exports")
        permissions = [("export_audit", _("Can export audit reports"))]

    def __str__(self) -> str:
        return f"Export {str(self.id)[:8]} ({self.report}.{self.format})"

    @property
    def percent(self) -> int:
        if self.status == ExportStatus.DONE:
            return 100
        if not self.rows_total:
            return 0
        return min(99, int(self.rows_done * 100 / self.rows_total))


class AnomalyKind(models.TextChoices):
    READS_PER_HOUR = "reads_per_hour", _("Many profiles read by one actor")
    OFF_HOURS = "off_hours", _("Reads outside working hours")
    DENIED_ATTEMPTS = "denied_attempts", _("Repeated denied attempts")
    BULK_EXPORTS = "bulk_exports", _("Bulk exports")


class AnomalyRule(models.Model):
    """A tunable rule: alert when an actor has more than ``threshold`` matching entries in a window."""

    name = models.CharField(_("name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=32, choices=AnomalyKind.choices)
    enabled = models.BooleanField(_("enabled"), default=True)
    threshold = models.PositiveIntegerField(
        _("threshold"), default=50,
        help_text=_("Alert when an actor has more than this many matching entries in one window."),
    )
    window_minutes = models.PositiveIntegerField(_("window (minutes)"), default=60)
    work_start_hour = models.PositiveSmallIntegerField(_("working hours start"), default=8)
    work_end_hour = models.PositiveSmallIntegerField(_("working hours end"), default=20)
    weekdays_only = models.BooleanField(_("weekends count as outside working hours"), default=True)
    timezone = models.CharField(_("time zone"), max_length=64, default="Asia/Tokyo")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]
        verbose_name = _("anomaly rule")
        verbose_name_plural = _("anomaly rules")

    def __str__(self) -> str:
        return self.name


class AnomalyAlert(models.Model):
    """One firing of a rule for one actor and window; acknowledged by a DPO (audited)."""

    rule = models.ForeignKey(AnomalyRule, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(_("kind"), max_length=32, choices=AnomalyKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(_("actor"), max_length=254, blank=True, default="")
    window_start = models.DateTimeField(_("window start"))
    window_end = models.DateTimeField(_("window end"))
    count = models.PositiveIntegerField(_("count"))
    threshold = models.PositiveIntegerField(_("threshold"))
    first_seq = models.BigIntegerField(null=True, blank=True)
    last_seq = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(_("raised"), auto_now_add=True, db_index=True)
    notified_at = models.DateTimeField(_("e-mailed"), null=True, blank=True)
    acknowledged_at = models.DateTimeField(_("acknowledged"), null=True, blank=True, db_index=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledge_note = models.CharField(_("note"), max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("anomaly alert")
        verbose_name_plural = _("anomaly alerts")
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "actor_label", "window_start"], name="anomaly_alert_once_per_window"
            ),
            # Nobody acknowledges an alert without saying why it is all right or what was done.
            models.CheckConstraint(
                condition=models.Q(acknowledged_at__isnull=True) | ~models.Q(acknowledge_note=""),
                name="anomaly_alert_acknowledged_with_note",
            ),
        ]

    def __str__(self) -> str:
        return f"Alert {self.pk} ({self.kind})"


from audit.models_verification import VerificationRun  # noqa: E402,F401 - the scheduled verification
