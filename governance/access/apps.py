from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class AccessConfig(AppConfig):
    name = "governance.access"
    label = "access"
    verbose_name = _("Access control")

    def ready(self) -> None:
        from governance.access import schema  # noqa: F401  (registers the OpenAPI auth scheme)
        from governance.access.roles import roles_sync_on_migrate

        post_migrate.connect(roles_sync_on_migrate, dispatch_uid="mamoru.roles_sync")
