"""Rebuild consent state from the events and report every difference (exit 1 if any)."""

from django.core.management.base import BaseCommand

from consent.services import consent_states_rebuild


class Command(BaseCommand):
    help = "Derive ConsentState from ConsentEvent and compare; --fix makes the stored state equal."

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Write the derived state.")

    def handle(self, *args, fix=False, **options):
        report = consent_states_rebuild(fix=fix)
        for key in report.missing:
            self.stdout.write(f"missing state: profile={key[0]} purpose={key[1]}")
        for key in report.extra:
            self.stdout.write(f"state without events: profile={key[0]} purpose={key[1]}")
        for key, fields in report.different:
            self.stdout.write(f"different: profile={key[0]} purpose={key[1]} fields={','.join(fields)}")
        summary = (f"{report.checked} state(s) derived; {len(report.missing)} missing, "
                   f"{len(report.extra)} extra, {len(report.different)} different")
        if report.clean:
            self.stdout.write(self.style.SUCCESS(summary + " — stored state equals the events"))
            return
        self.stdout.write(self.style.WARNING(summary + (" — fixed" if fix else "")))
        if not fix:
            raise SystemExit(1)
