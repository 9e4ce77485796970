"""Worker heartbeats: each Celery worker writes when it was last alive (``/metrics`` reads them)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class WorkerHeartbeat(models.Model):
    """One row per Celery worker node (``celery@host`` name), renewed by the worker itself."""

    hostname = models.CharField(_("worker"), max_length=200, unique=True)
    role = models.CharField(_("role"), max_length=20, default="worker")
    pid = models.PositiveIntegerField(_("process id"), default=0)
    started_at = models.DateTimeField(_("started"))
    last_seen = models.DateTimeField(_("last seen"), db_index=True)

    class Meta:
        verbose_name = _("worker heartbeat")
        verbose_name_plural = _("worker heartbeats")

    def __str__(self) -> str:
        return self.hostname
