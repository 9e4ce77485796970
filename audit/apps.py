from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = _("Audit")

    def ready(self) -> None:
        # Fill the exporter and report registries at start-up, not on first use.
        import audit.exporters  # noqa: F401
        import audit.reports  # noqa: F401
