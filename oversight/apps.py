from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OversightConfig(AppConfig):
    """The DPO's oversight: report exports, access anomalies and the admin dashboard.

    It sits above the audit kernel, the people (subjects) and the roles (access), and below the
    domain apps: DSR, consent and PII register their reports and dashboard panels into its
    registries from their own ``ready()``, so nothing here imports them.
    """

    name = "oversight"
    label = "oversight"
    verbose_name = _("Oversight")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Fill the registries at start-up, not on first use.
        import oversight.dashboard  # noqa: F401 - built-in panels
        import oversight.evidence  # noqa: F401 - the person page's access log section
        import oversight.exporters  # noqa: F401 - built-in formats
        import oversight.reports  # noqa: F401 - the access log report
        from audit.history import history_register
        from audit.models_exports import AnomalyRule

        history_register(AnomalyRule)
