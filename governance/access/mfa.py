"""The second factor for staff (TOTP through django-otp): who needs it, and the gate.

A session is *verified* once its user entered a code from a confirmed TOTP device
(``django_otp.login``). With ``MAMORU_MFA_REQUIRED`` on (the default):

- a user whose role can reveal, export, change or administer anything (superusers, the DPO, support
  agents, auditors, privacy analysts — every role but marketing) can do nothing with an unverified
  session but enrol or enter a code: the admin redirects, the API answers 403 ``mfa_required``;
- for everyone else an unverified session is read-only: any unsafe request is refused the same way
  (deny by default, whatever the permission checks further down would say).

API tokens are a factor of their own (the secret) and are limited by their scopes instead
(:mod:`governance.access.scopes`).
"""

from __future__ import annotations

import segno
from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from audit.services import security_event_record

MFA_REQUIRED_CODE = "mfa_required"
MFA_REQUIRED_DETAIL = _(
    "This action needs a second factor: sign in to the admin and enter a code from your "
    "authenticator app (or enrol one) first."
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Permissions that only read; anything else (reveal, export, add, change, delete, scan, ingest…)
# makes the second factor mandatory for its holder.
READ_ONLY_PREFIXES = ("view_", "check_")
DEVICE_NAME = "authenticator"


def mfa_enabled() -> bool:
    return bool(getattr(settings, "MAMORU_MFA_REQUIRED", True))


def _authenticated(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and user.is_active)


def mfa_required_for(user) -> bool:
    """Must ``user`` have a verified second factor before doing anything?"""
    if not mfa_enabled() or not _authenticated(user):
        return False
    if user.is_superuser:
        return True
    if any(not perm.split(".", 1)[1].startswith(READ_ONLY_PREFIXES) for perm in user.get_all_permissions()):
        return True
    # Object permissions (a support agent's reveal right on a workspace) count as well.
    workspace = apps.get_model("subjects", "Workspace")
    user_perms = get_user_obj_perms_model(workspace).objects.filter(user=user)
    group_perms = get_group_obj_perms_model(workspace).objects.filter(group__user=user)
    return any(
        qs.exclude(permission__codename__startswith="view_").exists() for qs in (user_perms, group_perms)
    )


def session_verified(user) -> bool:
    """Did this session's user enter a second factor (OTPMiddleware's ``is_verified``)?"""
    is_verified = getattr(user, "is_verified", None)
    return bool(callable(is_verified) and is_verified())


def mfa_blocks(user, *, method: str) -> bool:
    """Is a session request by ``user`` refused until a second factor is entered?"""
    if not mfa_enabled() or not _authenticated(user) or session_verified(user):
        return False
    return method.upper() not in SAFE_METHODS or mfa_required_for(user)


def totp_confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def totp_has_device(user) -> bool:
    return user_has_device(user, confirmed=True)


def totp_enrolment_device(*, user) -> TOTPDevice:
    """The unconfirmed device an enrolment page shows (the same one on every reload)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def totp_enrol_confirm(*, request, device: TOTPDevice, token: str) -> bool:
    """Confirm ``device`` with a first code; the session is verified with it from now on."""
    if device.confirmed or device.user_id != request.user.pk or not device.verify_token(token.strip()):
        return False
    with transaction.atomic():
        TOTPDevice.objects.filter(user=device.user, confirmed=False).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        security_event_record(
            event="mfa_enrolled", obj=device.user, actor=request.user, request=request,
            data={"device": device.persistent_id},
        )
    _verified_login(request, device)
    return True


def totp_verify(*, request, token: str) -> bool:
    """Check a code against the user's confirmed devices (throttled per device by django-otp)."""
    token = token.strip()
    for device in TOTPDevice.objects.filter(user=request.user, confirmed=True):
        if device.verify_token(token):
            _verified_login(request, device)
            return True
    return False


def totp_device_create_confirmed(*, user, key: str | None = None) -> TOTPDevice:
    """A confirmed device for ``user`` (demo users, and the tests' verified sessions)."""
    device = totp_confirmed_device(user)
    if device is not None:
        return device
    fields = {"key": key} if key else {}
    return TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=True, **fields)


def _verified_login(request, device: TOTPDevice) -> None:
    request.session.cycle_key()  # a new session id for the more privileged session
    otp_login(request, device)


def totp_secret_b32(device: TOTPDevice) -> str:
    from base64 import b32encode

    return b32encode(device.bin_key).decode()


def totp_qr_svg(device: TOTPDevice) -> str:
    """The otpauth URI as an inline SVG QR code (drawn here; nothing is fetched)."""
    return segno.make(device.config_url, error="m").svg_inline(scale=4, dark="#000", light="#fff")
