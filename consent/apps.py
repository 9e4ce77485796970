from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsentConfig(AppConfig):
    name = "consent"
    label = "consent"
    verbose_name = _("Consent and purposes")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled
        from django.db.models.signals import post_delete, post_save

        from audit.verification import chains
        from consent import dashboard, person, receivers, reports, schema  # noqa: F401 - registrations
        from consent.models import Site, SiteKey
        from consent.verification import ConsentChain
        from governance.subjects.models import Workspace
        from governance.subjects.signals import profile_merged, profile_shredded

        profile_shredded.connect(receivers.on_profile_shredded, dispatch_uid="consent-shred")
        profile_merged.connect(receivers.on_profile_merged, dispatch_uid="consent-merge")
        check_request_enabled.connect(receivers.cors_allow_site_origin, dispatch_uid="consent-cors")
        from audit.history import history_register
        from consent.models import Purpose, PurposeVersion, WebhookEndpoint

        for model in (Purpose, PurposeVersion, SiteKey, WebhookEndpoint):  # configuration history
            history_register(model)
        history_register(Site, m2m=("purposes",))
        for model in (SiteKey, Site, Workspace):
            for signal in (post_save, post_delete):
                signal.connect(receivers.on_key_scope_changed, sender=model,
                               dispatch_uid=f"consent-keys-{signal is post_save}-{model.__name__}")
        chains.register(ConsentChain)  # scheduled verification and head export (audit.verification)
