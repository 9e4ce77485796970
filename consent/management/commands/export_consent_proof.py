"""Export the consent proof of one subject: every event (with receipt and chain links) as JSON."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from consent.exports import consent_proof_export
from governance.subjects.models import Profile


class Command(BaseCommand):
    help = (
        "Write the consent proof for one profile (GDPR Art. 7(1)) as JSON to stdout or --out FILE: "
        "every consent event as a receipt, the current state and a check of each event's own hash. "
        "The export is recorded in the access log."
    )

    def add_arguments(self, parser):
        parser.add_argument("profile_id", help="The profile's id (a UUID, as shown in the admin).")
        parser.add_argument(
            "--out", metavar="FILE",
            help="Write the JSON to FILE (UTF-8, overwritten) instead of stdout; the directory must exist.",
        )

    def handle(self, *args, profile_id, out=None, **options):
        try:
            pk = uuid.UUID(str(profile_id).strip())
        except ValueError:
            raise CommandError(f"No such profile: {profile_id!r} is not a profile id (a UUID).") from None
        if out:
            target = Path(out)
            if target.is_dir():
                raise CommandError(f"--out {out} is a directory; give a file name.")
            if not target.parent.is_dir():
                raise CommandError(f"--out {out}: the directory {target.parent} does not exist.")
        profile = Profile.objects.filter(pk=pk).first()
        if profile is None:
            raise CommandError(f"No such profile: {pk}.")
        data = json.dumps(consent_proof_export(profile=profile), ensure_ascii=False, indent=2)
        if out:
            try:
                with open(out, "w", encoding="utf-8") as handle:
                    handle.write(data)
            except OSError as exc:
                raise CommandError(f"Cannot write {out}: {exc}") from None
            self.stdout.write(self.style.SUCCESS(f"written to {out}"))
        else:
            self.stdout.write(data)
