from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ObservabilityConfig(AppConfig):
    name = "governance.observability"
    label = "observability"
    verbose_name = _("Observability")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from governance.observability import (
            celery_signals,  # noqa: F401 - connects the signals
            metrics,  # noqa: F401 - registers its deploy check
        )
