"""API tokens in the admin: scoped, expiring, the secret shown once, listed with their last use.

A token is always created for the signed-in user: no one mints a token for someone else here (a
token acts as its user, with their powers and under their name in the audit log). The operator's
``manage.py create_api_token`` is the one way to make a token for another account.
"""

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from governance.access.mfa import mfa_enabled, session_verified
from governance.access.models import ApiToken
from governance.access.scopes import DEFAULT_SCOPES, TokenScope
from governance.access.tokens import (
    TokenExpiryInvalid,
    api_token_create,
    api_token_expiry_check,
    api_token_expiry_default,
    api_token_revoke,
)


class ApiTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"), choices=TokenScope.choices, initial=list(DEFAULT_SCOPES),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("What the token may do, within its user's permissions. Reveal and export also "
                    "need read."),
    )

    class Meta:
        model = ApiToken
        fields = ("name", "scopes", "expires_at")  # never "user": the token is the creator's own

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "name" in self.fields and self.instance.pk is None:
            self.fields["name"].help_text = _("The token is yours: it acts with your permissions, within its "
                                              "scopes, and what it does is audited under your name.")
        if "expires_at" in self.fields:
            self.fields["expires_at"].required = True
            self.fields["expires_at"].initial = api_token_expiry_default
            self.fields["expires_at"].help_text = _("Every token expires; the longest allowed is set by "
                                                    "MAMORU_API_TOKEN_MAX_DAYS.")

    def clean_expires_at(self):
        value = self.cleaned_data["expires_at"]
        try:
            api_token_expiry_check(value)
        except TokenExpiryInvalid as exc:
            raise forms.ValidationError(str(exc)) from exc
        return value


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ("name", "user", "key_id", "scope_labels", "created_at", "last_used_at", "expires_at",
                    "revoked_at")
    list_filter = ("revoked_at",)
    readonly_fields = ("key_id", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    @admin.display(description=_("scopes"))
    def scope_labels(self, obj):
        return obj.scope_labels

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "scopes", "expires_at")
        return ("user", "name", "scopes", "expires_at", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        # A token's powers are fixed at creation: a different need is a new token.
        if obj is None:
            return ()
        return ("user", "scopes", "expires_at", *self.readonly_fields)

    def has_add_permission(self, request):
        # Tokens are made only from a session that entered its second factor.
        verified = session_verified(request.user) or not mfa_enabled()
        return verified and super().has_add_permission(request)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        # The signed-in user's own token, whatever the request carried (issue 13: a DPO minted a
        # superuser's token by posting its id).
        obj.user = request.user
        token, secret = api_token_create(
            user=request.user, name=obj.name, scopes=form.cleaned_data["scopes"], expires_at=obj.expires_at
        )
        obj.pk, obj.key_id, obj.digest, obj.scopes = token.pk, token.key_id, token.digest, token.scopes
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
