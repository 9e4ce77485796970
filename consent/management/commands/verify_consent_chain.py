"""Verify the consent event hash chain (exit status 1 on any problem)."""

from django.core.management.base import BaseCommand

from consent.chain import chain_verify


class Command(BaseCommand):
    help = "Check that no consent event was changed, removed or reordered."

    def handle(self, *args, **options):
        problems = list(chain_verify())
        for problem in problems:
            self.stdout.write(f"{problem.kind}: {problem.message}")
        if problems:
            self.stdout.write(self.style.ERROR(f"consent chain BROKEN: {len(problems)} problem(s)"))
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS("consent chain OK"))
