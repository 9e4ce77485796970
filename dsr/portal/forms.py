"""Portal forms: request type + identity, and the e-mailed code."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from governance.subjects.identities import InvalidEmail, InvalidIdentity, email_requester_canonical
from governance.subjects.models import Workspace

# The request types a person can pick, in the order they are offered (labels in plain language).
PORTAL_TYPES = [
    ("access", _("See a copy of my data (access)")),
    ("erasure", _("Delete my data (deletion)")),
    ("rectification", _("Correct my data (correction)")),
    ("opt_out_sale", _("Do not sell or share my data (opt-out of sale/sharing)")),
    ("limit_sensitive", _("Limit the use of my sensitive data")),
    ("restriction", _("Restrict the processing of my data")),
    ("objection", _("Object to the processing of my data (e.g. direct marketing)")),
]
CORRECTION_CATEGORIES = [
    ("user.name", _("Name")),
    ("user.contact.address", _("Postal address")),
    ("user.contact.phone_number", _("Phone number")),
    ("user.contact.email", _("E-mail address")),
    ("user.demographic.date_of_birth", _("Date of birth")),
]


class RequestForm(forms.Form):
    workspace = forms.ModelChoiceField(
        label=_("Service"), queryset=Workspace.objects.order_by("name"), to_field_name="slug",
        required=False, empty_label=_("All our services"),
        help_text=_("Not sure where your data is? Keep “All our services”: we then search every one."),
    )
    request_type = forms.ChoiceField(label=_("What would you like us to do?"), choices=PORTAL_TYPES,
                                     widget=forms.RadioSelect)
    # A text input: browsers' type=email refuses internationalised addresses (stanisław@…, RFC 6531).
    email = forms.CharField(
        label=_("Your e-mail address"), max_length=254,
        help_text=_("The address you use with us. We send a confirmation code to it."),
        widget=forms.TextInput(attrs={"autocomplete": "email", "inputmode": "email", "spellcheck": "false",
                                      "autocapitalize": "off"}),
    )
    correction_category = forms.ChoiceField(
        label=_("What should be corrected?"), choices=[("", "—"), *CORRECTION_CATEGORIES], required=False
    )
    correction_value = forms.CharField(
        label=_("The correct value"), max_length=500, required=False,
        help_text=_("Only for a correction request."),
    )

    def __init__(self, *args, brand: Workspace | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.brand = brand
        if brand is not None:
            del self.fields["workspace"]  # a brand's own portal page: the request covers that brand
        elif self.fields["workspace"].queryset.count() == 1:
            self.fields["workspace"].widget = forms.HiddenInput()
            self.fields["workspace"].initial = self.fields["workspace"].queryset.first().slug

    def clean_email(self) -> str:
        value = self.cleaned_data["email"]
        try:
            email_requester_canonical(value)
        except InvalidEmail as exc:  # a domain literal or a single-label host: no mail to internal hosts
            raise forms.ValidationError(exc.detail, code="invalid_email") from None
        except InvalidIdentity:
            # Django's own message (translated by Django's catalogues).
            raise forms.ValidationError(_("Enter a valid email address."), code="invalid") from None
        return value.strip()

    def clean(self):
        data = super().clean()
        if data.get("request_type") == "rectification":
            if not data.get("correction_category"):
                self.add_error("correction_category", _("Choose what should be corrected."))
            if not data.get("correction_value"):
                self.add_error("correction_value", _("Give the correct value."))
        return data

    def scope(self) -> tuple[Workspace, bool]:
        """The request's workspace, and whether it covers every workspace (no brand chosen)."""
        chosen = self.brand or self.cleaned_data.get("workspace")
        if chosen is not None:
            return chosen, False
        # Every workspace: the first one created gives the defaults (jurisdiction, approval).
        return Workspace.objects.order_by("created_at", "pk").first(), True

    def details(self) -> dict:
        data = self.cleaned_data
        if data["request_type"] == "rectification":
            return {"changes": [{"category": data["correction_category"], "value": data["correction_value"]}]}
        return {}


class VerifyForm(forms.Form):
    code = forms.RegexField(
        label=_("Confirmation code"), regex=r"^\s*\d{6}\s*$", max_length=12,
        help_text=_("The 6-digit code from the e-mail we sent you."),
        error_messages={"invalid": _("Enter the 6 digits from the e-mail.")},
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )


class ReplyForm(forms.Form):
    """The person's answer to a message from the privacy team."""

    body = forms.CharField(label=_("Your answer"), widget=forms.Textarea(attrs={"rows": 5}), max_length=4000,
                           help_text=_("Answer the question in our last message. Do not send passwords."))
