"""Staff sessions: idle and absolute timeouts, and the second-factor gate of the admin.

Both run after ``AuthenticationMiddleware`` and django-otp's ``OTPMiddleware``. The API's gate is
in DRF authentication (:class:`governance.access.authentication.VerifiedSessionAuthentication`).
"""

from __future__ import annotations

import time
import weakref
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django_otp.middleware import OTPMiddleware

from governance.access.mfa import mfa_blocks, totp_has_device

SESSION_STARTED = "mamoru_session_started"
SESSION_SEEN = "mamoru_session_seen"
# The last-seen stamp is rewritten at most this often (no session write per request).
SEEN_RESOLUTION_SECONDS = 60


class VerifiedUserMiddleware(OTPMiddleware):
    """django-otp's ``OTPMiddleware`` (``request.user.otp_device``, ``request.user.is_verified()``)
    without its reference cycle: django-otp binds ``is_verified`` to the user with a
    ``functools.partial`` (user → partial → user), which left every request, anonymous ones too, to
    the cyclic garbage collector (see ``governance.api.middleware.ReleaseRequestMiddleware``)."""

    @staticmethod
    def _init_user_fields(user):
        user.otp_device = None
        user_ref = weakref.ref(user)

        def is_verified() -> bool:
            current = user_ref()
            return current is not None and current.otp_device is not None

        user.is_verified = is_verified


@receiver(user_logged_in, dispatch_uid="mamoru.session_started")
def _session_started(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        now = int(time.time())
        request.session[SESSION_STARTED] = now
        request.session[SESSION_SEEN] = now


def session_expired(session, *, now: int) -> str | None:
    """"idle" or "lifetime" when a signed-in session has ended, else None."""
    started, seen = session.get(SESSION_STARTED), session.get(SESSION_SEEN)
    if started is not None and now - started > settings.MAMORU_SESSION_MAX_HOURS * 3600:
        return "lifetime"
    if seen is not None and now - seen > settings.MAMORU_SESSION_IDLE_MINUTES * 60:
        return "idle"
    return None


class SessionTimeoutMiddleware:
    """Sign out a session idle for ``MAMORU_SESSION_IDLE_MINUTES`` or older than
    ``MAMORU_SESSION_MAX_HOURS``; the admin then asks for the login again."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.SESSION_COOKIE_NAME in request.COOKIES and request.user.is_authenticated:
            now = int(time.time())
            session = request.session
            expired = session_expired(session, now=now)
            if expired:
                logout(request)
                if request.path.startswith(_admin_prefix()):
                    message = (
                        _("You were signed out after %(minutes)d minutes without activity.")
                        % {"minutes": settings.MAMORU_SESSION_IDLE_MINUTES}
                        if expired == "idle"
                        else _("Your session reached its maximum length; please sign in again.")
                    )
                    messages.warning(request, message)
                    return _redirect(reverse("admin:login"), request)
            else:
                session.setdefault(SESSION_STARTED, now)  # sessions from before this middleware
                if now - session.get(SESSION_SEEN, 0) >= SEEN_RESOLUTION_SECONDS:
                    session[SESSION_SEEN] = now
        return self.get_response(request)


class MfaGateMiddleware:
    """In the admin, an unverified session that needs a second factor is sent to enter a code
    (or to enrol one) before anything else; unsafe requests of any unverified session likewise."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        prefix = _admin_prefix()
        if (
            request.path.startswith(prefix)
            and request.path not in _open_admin_paths()
            and request.user.is_authenticated
            and mfa_blocks(request.user, method=request.method)
        ):
            target = "access:mfa-verify" if totp_has_device(request.user) else "access:mfa-setup"
            if request.method not in ("GET", "HEAD"):
                messages.warning(request, _("This action needs a second factor; enter a code first."))
            return _redirect(reverse(target), request)
        return self.get_response(request)


def _admin_prefix() -> str:
    return reverse("admin:index")


def _open_admin_paths() -> frozenset[str]:
    return frozenset({reverse("admin:login"), reverse("admin:logout"), reverse("admin:jsi18n")})


def _redirect(url: str, request) -> HttpResponseRedirect:
    next_url = request.get_full_path() if request.method in ("GET", "HEAD") else reverse("admin:index")
    return HttpResponseRedirect(f"{url}?{urlencode({'next': next_url})}")
