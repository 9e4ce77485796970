"""API tokens in the admin: the secret is shown once, right after creation."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from governance.access.models import ApiToken
from governance.access.tokens import api_token_create, api_token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "key_id", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    fields = ("user", "name", "expires_at")
    readonly_fields = ("key_id", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, secret = api_token_create(user=obj.user, name=obj.name, expires_at=obj.expires_at)
        obj.pk, obj.key_id, obj.digest = token.pk, token.key_id, token.digest
        messages.warning(
            request,
            _("Copy this token now; it is not stored and will not be shown again: %(secret)s")
            % {"secret": secret},
        )

    @admin.action(description=_("Revoke selected tokens"))
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, _("Revoked."))
