"""Create an API token for a user and print it once."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from governance.access.tokens import api_token_create


class Command(BaseCommand):
    help = "Create an API token for USER named NAME. The token is printed once and stored only as a digest."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("name", help="what the token is for, e.g. 'crm-sync'")

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        token, secret = api_token_create(user=user, name=name)
        self.stdout.write(secret)
        self.stderr.write(f"Token {token.key_id} for {username}: use 'Authorization: Bearer <token>'. Not shown again.")
