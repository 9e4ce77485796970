"""Verify the audit log's hash chain; exit status 1 and name the first bad entry if broken."""

from django.core.management.base import BaseCommand, CommandError

from audit.chain import chain_verify
from audit.models import AuditEntry, ChainHead


class Command(BaseCommand):
    help = (
        "Recompute the audit log's hash chain. Exits 0 when every entry is intact, 1 when an "
        "entry was changed, removed or reordered, naming the first bad entry. Prints the head "
        "hash, which you can record elsewhere (ticket, e-mail) to detect removal of the newest entries."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="list every problem, not only the first")

    def handle(self, *args, **options):
        problems = []
        for problem in chain_verify():
            problems.append(problem)
            if not options["all"]:
                break
        total = AuditEntry.objects.count()
        if problems:
            for problem in problems:
                self.stderr.write(f"BROKEN: {problem.message}")
            raise CommandError(
                f"Audit chain broken at {problems[0].message} ({total} entries checked).", returncode=1
            )
        head = ChainHead.objects.filter(pk=1).first()
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain intact: {total} entries; head seq {head.seq if head else 0}, "
                f"hash {head.hash if head else '-'}"
            )
        )
