from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    """The audit kernel: entries, their hash chain, recording, verification and history.

    Every app writes here, so it imports none of them (only Django, auditlog and the shared core).
    Reports, exports, anomaly rules and the dashboard live one floor up in ``oversight``; each app
    registers its own models for configuration history (``audit.history.history_register``).
    """

    name = "audit"
    verbose_name = _("Audit")

    def ready(self) -> None:
        from audit import head_stores  # noqa: F401  (registers the head stores and their system check)
