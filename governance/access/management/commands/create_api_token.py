"""Create an API token for a user and print it once.

An operator's tool (shell access to the deployment): unlike the admin, where staff create tokens
only for themselves, it makes a token for any USER, e.g. the service account of an integration.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from governance.access.scopes import DEFAULT_SCOPES, TokenScope
from governance.access.tokens import api_token_create


class Command(BaseCommand):
    help = (
        "Create an API token for USER named NAME with the given scopes (default: read) and expiry "
        "(default MAMORU_API_TOKEN_DAYS). The token is printed once and stored only as a digest."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("name", help="what the token is for, e.g. 'crm-sync'")
        parser.add_argument(
            "--scope", dest="scopes", action="append", choices=TokenScope.values,
            help="a scope the token gets (repeat for several); default: read",
        )
        parser.add_argument(
            "--days", type=int,
            help="days until the token expires (1 to MAMORU_API_TOKEN_MAX_DAYS; default MAMORU_API_TOKEN_DAYS)",
        )

    def handle(self, *args, username: str, name: str, scopes=None, days=None, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if days is not None and days < 1:
            raise CommandError(f"--days must be at least 1 (got {days}); leave it out for the default "
                               f"of {settings.MAMORU_API_TOKEN_DAYS} days.")
        expires_at = timezone.now() + timedelta(days=days) if days is not None else None
        try:
            token, secret = api_token_create(
                user=user, name=name, scopes=scopes or DEFAULT_SCOPES, expires_at=expires_at
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(secret)
        self.stderr.write(
            f"Token {token.key_id} for {username} ({', '.join(token.scopes)}; expires "
            f"{token.expires_at:%Y-%m-%d}): use 'Authorization: Bearer <token>'. Not shown again."
        )
