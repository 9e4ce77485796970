"""Runs of the scheduled chain verification (``audit.verification``): what was checked, what broke.

Imported at the end of ``audit/models_exports.py`` so the model belongs to the ``audit`` app.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class VerificationRun(models.Model):
    """One verification of every registered chain (incremental, or full from the start)."""

    started_at = models.DateTimeField(_("started"), db_index=True)
    finished_at = models.DateTimeField(_("finished"))
    full = models.BooleanField(_("full"), default=False, help_text=_("From the start of every chain."))
    ok = models.BooleanField(_("intact"))
    checked = models.BigIntegerField(_("entries checked"), default=0)
    problem_count = models.PositiveIntegerField(_("problems"), default=0)
    chains = models.JSONField(_("chains"), default=dict, blank=True,
                              help_text=_("Per chain: entries checked, problems, position reached."))
    problems = models.JSONField(_("problems found"), default=list, blank=True)
    notified_at = models.DateTimeField(_("e-mailed"), null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("chain verification")
        verbose_name_plural = _("chain verifications")

    def __str__(self) -> str:
        return f"Verification {self.pk} ({'intact' if self.ok else 'broken'})"
