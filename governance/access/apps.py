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
        from governance.access.throttling import check_rate_limit_cache  # noqa: F401  (registers it)

        post_migrate.connect(roles_sync_on_migrate, dispatch_uid="mamoru.roles_sync")

        # Configuration history: users, roles (groups) and their permissions, object permissions
        # and API tokens.
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from guardian.models import GroupObjectPermission, UserObjectPermission

        from audit.history import history_register
        from audit.verification import alert_recipients_register
        from governance.access.models import ApiToken
        from governance.access.roles import dpo_emails

        alert_recipients_register(dpo_emails)  # chain breaks are told to the DPOs

        history_register(get_user_model(), m2m=("groups", "user_permissions"))
        history_register(Group, m2m=("permissions",))
        for model in (UserObjectPermission, GroupObjectPermission, ApiToken):
            history_register(model)

        # Second factors: enrolment and removal are configuration changes (the key never shown;
        # the counters a code check moves are left out). Lockouts and session limits.
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from governance.access import lockout, middleware  # noqa: F401  (signal receivers)

        history_register(
            TOTPDevice, secrets=("key",),
            exclude=("last_t", "drift", "throttling_failure_timestamp", "throttling_failure_count",
                     "last_used_at", "created_at"),
        )
