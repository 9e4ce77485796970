from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsentConfig(AppConfig):
    name = "consent"
    label = "consent"
    verbose_name = _("Consent and purposes")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        from consent import receivers, schema  # noqa: F401 - registers the OpenAPI extension
        from governance.subjects.signals import profile_merged, profile_shredded

        profile_shredded.connect(receivers.on_profile_shredded, dispatch_uid="consent-shred")
        profile_merged.connect(receivers.on_profile_merged, dispatch_uid="consent-merge")
        check_request_enabled.connect(receivers.cors_allow_site_origin, dispatch_uid="consent-cors")
