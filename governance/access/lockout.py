"""Login throttling with django-axes: the client address it counts by, and lockouts in the audit log.

Failures are counted per username and client address (``AXES_LOCKOUT_PARAMETERS``) in the
database, so every web process and replica sees the same count. The address is the one the audit
log believes (:func:`audit.history.client_address`): ``X-Forwarded-For`` only from a proxy in
``MAMORU_TRUSTED_PROXIES``.
"""

from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.dispatch import receiver
from django.utils.translation import gettext_lazy as _

from audit.history import client_address
from audit.models import Outcome
from audit.services import security_event_record


def login_client_ip(request) -> str | None:
    """``AXES_CLIENT_IP_CALLABLE``: the client's address, forwarded headers from trusted proxies only."""
    return client_address(getattr(request, "_request", request))[0]


@receiver(user_locked_out, dispatch_uid="mamoru.login_lockout_audit")
def login_lockout_record(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    """Record every locked-out login attempt in the audit chain (against the account, if any)."""
    User = get_user_model()  # noqa: N806 - a model class
    account = User.objects.filter(**{User.USERNAME_FIELD: username}).first() if username else None
    security_event_record(
        event="login_lockout", obj=account, model=User, object_repr=str(username or "")[:150],
        outcome=Outcome.DENIED, request=request, data={"username": str(username or "")[:150]},
    )


def login_lockout_response(request, original_response=None, credentials=None):
    """``AXES_LOCKOUT_CALLABLE``: a 429 page in the user's language saying how long to wait."""
    from axes.helpers import get_cool_off, get_failure_limit
    from django.conf import settings
    from django.contrib import admin
    from django.template.response import TemplateResponse

    cool_off = get_cool_off(request)
    context = {
        **admin.site.each_context(request),
        "failure_limit": get_failure_limit(request, credentials),
        "cooloff_minutes": int(cool_off.total_seconds() // 60) if cool_off else None,
        "title": _("Account locked"),
    }
    response = TemplateResponse(request, "access/lockout.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
    if cool_off:
        response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response.render()
