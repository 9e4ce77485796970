from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DsrConfig(AppConfig):
    name = "dsr"
    label = "dsr"
    verbose_name = _("Data-subject requests")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dsr import checks, dashboard, person, reports  # noqa: F401 - checks, panel, person page, reports
        from dsr.connectors import autoload
        from dsr.schema_inspect import inspectors_register

        autoload()
        inspectors_register()  # strategies and live-schema checks for the data map loader
        from audit.history import history_register
        from dsr.models import WorkspaceDsrPolicy

        history_register(WorkspaceDsrPolicy)  # configuration history
