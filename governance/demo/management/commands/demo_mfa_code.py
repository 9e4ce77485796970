"""Print the current second-factor code of a demo user (development deployments only)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Print the current TOTP code of USERNAME's authenticator device, for trying the demo without "
        "an authenticator app. Refused when MAMORU_DEPLOYMENT=production."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username: str, **options):
        from django_otp.oath import TOTP

        from governance.access.mfa import totp_confirmed_device

        if settings.PRODUCTION:
            raise CommandError("demo_mfa_code is for development deployments only.")
        user = get_user_model().objects.filter(username=username).first()
        device = totp_confirmed_device(user) if user is not None else None
        if device is None:
            raise CommandError(f"No user {username!r} with a confirmed authenticator device.")
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        self.stdout.write(f"{totp.token():0{device.digits}d}")
