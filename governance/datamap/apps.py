from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DatamapConfig(AppConfig):
    name = "governance.datamap"
    label = "datamap"
    verbose_name = _("Data map")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit.history import history_register
        from governance.datamap import checks  # noqa: F401 - registers system checks
        from governance.datamap.models import Collection, Field, Store

        for model in (Store, Collection, Field):  # configuration history (store secrets masked)
            history_register(model)
