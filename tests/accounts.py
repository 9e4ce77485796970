"""Staff sessions for tests: signed in *with* the second factor, as a real login leaves them.

``otp_verified_login(client, user)`` gives ``user`` a confirmed TOTP device (once) and a session that
entered it (what ``django_otp.login`` stores after a good code). The ``client`` and ``api_client``
fixtures (tests/conftest.py) are such clients: their ``force_login`` / ``force_authenticate`` sign in
through a real session, so requests pass the session's second-factor gate like a staff member who
entered a code. Tests of the gate itself use a plain ``django.test.Client``.
"""

from __future__ import annotations

import time

from django.test import Client
from rest_framework.test import APIClient


def totp_device(user):
    from governance.access.mfa import totp_device_create_confirmed

    return totp_device_create_confirmed(user=user)


def totp_code(device, *, at: float | None = None) -> str:
    """The code an authenticator app shows for ``device`` now (or at ``at``)."""
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() if at is None else at
    return f"{totp.token():0{device.digits}d}"


def otp_verified_login(client: Client, user) -> None:
    from django_otp import DEVICE_ID_SESSION_KEY

    device = totp_device(user)
    Client.force_login(client, user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


class OtpVerifiedClient(Client):
    """``force_login`` signs in with the second factor entered."""

    def force_login(self, user, backend=None):
        otp_verified_login(self, user)


class OtpVerifiedAPIClient(APIClient):
    """``force_authenticate(user)`` signs in through a session with the second factor entered (the
    real session authentication and its gate run); ``force_authenticate(None)`` signs out."""

    def force_login(self, user, backend=None):
        otp_verified_login(self, user)

    def force_authenticate(self, user=None, token=None):
        if token is not None:
            return super().force_authenticate(user=user, token=token)
        self.logout()
        if user is not None:
            otp_verified_login(self, user)
