"""Export the consent proof of one subject: every event (with receipt and chain links) as JSON."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from consent.exports import consent_proof_export
from governance.subjects.models import Profile


class Command(BaseCommand):
    help = "Write the consent proof for one profile (GDPR Art. 7(1)) to stdout or --out FILE."

    def add_arguments(self, parser):
        parser.add_argument("profile_id")
        parser.add_argument("--out")

    def handle(self, *args, profile_id, out=None, **options):
        profile = Profile.objects.filter(pk=profile_id).first()
        if profile is None:
            raise CommandError("No such profile.")
        data = json.dumps(consent_proof_export(profile=profile), ensure_ascii=False, indent=2)
        if out:
            with open(out, "w", encoding="utf-8") as handle:
                handle.write(data)
            self.stdout.write(self.style.SUCCESS(f"written to {out}"))
        else:
            self.stdout.write(data)
