from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    """The audit kernel: entries, their hash chain, recording and verification.

    Every app writes here, so it imports none of them (only Django, auditlog and the shared core).
    Reports, exports, anomaly rules and the dashboard live one floor up in ``oversight``.
    """

    name = "audit"
    verbose_name = _("Audit")
