from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SubjectsConfig(AppConfig):
    name = "governance.subjects"
    label = "subjects"
    verbose_name = _("Data subjects")

    def ready(self) -> None:
        from audit.history import history_register
        from governance.subjects import person  # noqa: F401 - built-in person page sections, searches
        from governance.subjects.models import Workspace

        history_register(Workspace)  # configuration history
