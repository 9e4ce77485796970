from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DsrConfig(AppConfig):
    name = "dsr"
    label = "dsr"
    verbose_name = _("Data-subject requests")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dsr import checks  # noqa: F401 - registers system checks
        from dsr.connectors import autoload

        autoload()
