"""Load demo data and print the logins (also written to var/demo_credentials.json)."""

from __future__ import annotations

import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string


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

    def handle(self, *args, quiet_logins: bool = False, **options):
        credentials: dict = {"admin_url": "http://127.0.0.1:8000/admin/"}
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
            for key, value in credentials.items():
                if key not in {"users", "admin_url", "workspaces"}:
                    self.stdout.write(f"  {key}: {json.dumps(value, ensure_ascii=False, default=str)}")
