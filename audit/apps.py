from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = _("Audit")

    def ready(self) -> None:
        # Fill the exporter and report registries at start-up, not on first use (exporters,
        # reports). Configuration history: anomaly rules; users, roles (groups) and their
        # permissions, object permissions and API tokens (governance.access sits beside the kernel).
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from guardian.models import GroupObjectPermission, UserObjectPermission

        import audit.exporters  # noqa: F401
        import audit.reports  # noqa: F401
        from audit.history import history_register
        from audit.models_exports import AnomalyRule
        from governance.access.models import ApiToken

        history_register(get_user_model(), m2m=("groups", "user_permissions"))
        history_register(Group, m2m=("permissions",))
        for model in (AnomalyRule, UserObjectPermission, GroupObjectPermission, ApiToken):
            history_register(model)
