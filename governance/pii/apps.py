from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PiiConfig(AppConfig):
    name = "governance.pii"
    label = "pii"
    verbose_name = _("PII scanning")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from governance.pii import checks, dashboard, person  # noqa: F401 - checks, panel, person page
        from governance.pii.recognizers import autodiscover
        from governance.pii.signals import findings_follow_merge
        from governance.subjects.signals import profile_merged

        autodiscover()
        from audit.freetext import freetext_masker_register
        from governance.pii.freetext import freetext_mask_patterns

        freetext_masker_register(freetext_mask_patterns)  # reasons and notes: masked before storing
        profile_merged.connect(findings_follow_merge, dispatch_uid="pii.findings_follow_merge")
