"""Second-factor pages for staff: enrol an authenticator app, and enter a code after the password."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from governance.access.mfa import (
    session_verified,
    totp_enrol_confirm,
    totp_enrolment_device,
    totp_has_device,
    totp_qr_svg,
    totp_secret_b32,
    totp_verify,
)

WRONG_CODE = _("That code is not valid (or too many attempts were made; wait a little and try again).")


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code from your authenticator app"), max_length=8, min_length=6,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                   require_https=request.is_secure()):
        return target
    return reverse("admin:index")


def _admin_login(request):
    return HttpResponseRedirect(f"{reverse('admin:login')}?{urlencode({'next': request.get_full_path()})}")


def _context(request, **extra) -> dict:
    from django.contrib import admin

    return {**admin.site.each_context(request), "next": _next(request), **extra}


@never_cache
@sensitive_post_parameters("code")
def mfa_verify(request):
    """After the password: a code from the enrolled device verifies the session."""
    if not request.user.is_authenticated:
        return _admin_login(request)
    if session_verified(request.user):
        return HttpResponseRedirect(_next(request))
    if not totp_has_device(request.user):
        return HttpResponseRedirect(f"{reverse('access:mfa-setup')}?{urlencode({'next': _next(request)})}")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if totp_verify(request=request, token=form.cleaned_data["code"]):
            return HttpResponseRedirect(_next(request))
        form.add_error("code", WRONG_CODE)
    return TemplateResponse(request, "access/mfa_verify.html", _context(
        request, form=form, title=_("Two-step verification")))


@never_cache
@sensitive_post_parameters("code")
def mfa_setup(request):
    """Enrol an authenticator app: QR code and secret, confirmed with a first code.

    A user who already has a device must verify with it first: a password alone never replaces
    a second factor.
    """
    if not request.user.is_authenticated:
        return _admin_login(request)
    if totp_has_device(request.user):
        if not session_verified(request.user):
            return HttpResponseRedirect(f"{reverse('access:mfa-verify')}?{urlencode({'next': _next(request)})}")
        return TemplateResponse(request, "access/mfa_setup.html", _context(
            request, enrolled=True, title=_("Set up two-step verification")))
    device = totp_enrolment_device(user=request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if totp_enrol_confirm(request=request, device=device, token=form.cleaned_data["code"]):
            return HttpResponseRedirect(_next(request))
        form.add_error("code", WRONG_CODE)
    return TemplateResponse(request, "access/mfa_setup.html", _context(
        request, form=form, qr_svg=totp_qr_svg(device), secret=totp_secret_b32(device),
        otpauth_uri=device.config_url, title=_("Set up two-step verification")))

