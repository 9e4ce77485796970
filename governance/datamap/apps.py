from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DatamapConfig(AppConfig):
    name = "governance.datamap"
    label = "datamap"
    verbose_name = _("Data map")
    default_auto_field = "django.db.models.BigAutoField"
