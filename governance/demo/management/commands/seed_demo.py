"""Load demo data and print the logins (also written to var/demo_credentials.json)."""

from __future__ import annotations

import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.utils.module_loading import import_string

DEFAULT_BIND = "127.0.0.1:8000"


def demo_base_url(bind: str) -> str:
    """The address people open for a server bound to ``bind`` (MAMORU_PUBLIC_URL wins)."""
    configured = (getattr(settings, "MAMORU_PUBLIC_URL", "") or "").rstrip("/")
    if configured:
        return configured
    host, _sep, port = bind.rpartition(":")
    if host in ("0.0.0.0", "", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def unmigrated_databases() -> list[str]:
    """The database aliases (``default``, ``keystore``) with migrations not applied yet."""
    pending = []
    for alias in settings.DATABASES:
        try:
            executor = MigrationExecutor(connections[alias])
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except DatabaseError as exc:
            raise CommandError(f"The {alias!r} database cannot be read ({exc}). Check DATABASE_URL / "
                               "MAMORU_KEYSTORE_URL, then run `python manage.py migrate` and "
                               "`python manage.py migrate --database keystore`.") from exc
        if plan:
            pending.append(alias)
    return pending


class Command(BaseCommand):
    help = (
        "Create demo data: workspaces shop-jp and shop-eu, one staff user per role (DPO, privacy "
        "analyst, support agent, marketing, auditor) with fresh generated passwords, realistic "
        "profiles, and whatever each feature's seeder adds (consent site and keys, demo stores). "
        "Safe to run again: data is not duplicated, passwords are regenerated. Logins are printed "
        "and written to var/demo_credentials.json (git-ignored)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--quiet-logins", action="store_true", help="do not print passwords")
        parser.add_argument(
            "--bind", default=os.environ.get("MAMORU_DEMO_BIND", DEFAULT_BIND),
            help="HOST:PORT the demo will be served on (run_demo --bind): the demo site's origin and "
            "privacy URL, and the printed admin URL, use it unless MAMORU_PUBLIC_URL is set "
            f"(default: $MAMORU_DEMO_BIND or {DEFAULT_BIND})",
        )

    def handle(self, *args, quiet_logins: bool = False, bind: str = DEFAULT_BIND, **options):
        # Seeding writes to both databases (the key store holds the profiles' data keys): an
        # unmigrated one would stop it half-way with "no such table" (issue 13 QA).
        pending = unmigrated_databases()
        if pending:
            commands = {"default": "`python manage.py migrate`",
                        "keystore": "`python manage.py migrate --database keystore`"}
            raise CommandError(
                "Not migrated yet: " + ", ".join(f"the {alias!r} database" for alias in pending)
                + ". Run " + " and ".join(commands.get(alias, f"`python manage.py migrate --database {alias}`")
                                          for alias in pending)
                + " first (a new install needs both), then seed_demo again."
            )
        base_url = demo_base_url(bind)
        credentials: dict = {"base_url": base_url, "admin_url": f"{base_url}/admin/"}
        for path in settings.MAMORU_DEMO_SEEDERS:
            self.stdout.write(f"Seeding {path} …")
            import_string(path)(stdout=self.stdout, credentials=credentials)
        target = settings.VAR_DIR / "demo_credentials.json"
        target.write_text(json.dumps(credentials, indent=2, ensure_ascii=False, default=str))
        os.chmod(target, 0o600)
        self.stdout.write(self.style.SUCCESS(f"Demo data ready. Logins written to {target}"))
        self.stdout.write(f"Admin: {credentials['admin_url']}")
        if not quiet_logins:
            for user in credentials.get("users", []):
                self.stdout.write(f"  {user['role']:<16} {user['username']:<10} {user['password']}")
                if user.get("totp_key"):
                    self.stdout.write(f"  {'':<16} 2FA key {user['totp_key']}  {user['otpauth_uri']}")
            if any(user.get("totp_key") for user in credentials.get("users", [])):
                self.stdout.write(
                    "  After the password the admin asks for a code: add a 2FA key to an authenticator "
                    "app, or run `python manage.py demo_mfa_code USERNAME`."
                )
            for key, value in credentials.items():
                if key not in {"users", "admin_url", "workspaces", "base_url"}:
                    self.stdout.write(f"  {key}: {json.dumps(value, ensure_ascii=False, default=str)}")
