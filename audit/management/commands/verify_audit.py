"""Verify the audit log's hash chains: report every break, print the head(s), exit 1 if broken."""

import json

from django.core.management.base import BaseCommand, CommandError

from audit.chain import chain_head, chain_heads, chain_verify
from audit.models import AuditEntry


class Command(BaseCommand):
    help = (
        "Recompute the audit log's hash chains (every partition) and report EVERY problem: an entry "
        "changed, deleted (a gap), swapped or reordered, inserted without a seal, or entries removed at "
        "the end (the chain head says more). Always prints the head: the newest entry's global sequence "
        "number, hash and time; record it outside the database (ticket, e-mail) to detect removal of the "
        "newest entries together with the head. Exit status: 0 intact, 1 broken. "
        "--json prints {ok, entries, head: {seq, hash, time}, heads: [...], problems: "
        "[{seq, partition, row_id, kind, message}]}; a problem's seq is its position in its partition."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print a machine-readable report on stdout")
        parser.add_argument(
            "--all", action="store_true",
            help="accepted for compatibility; every problem is always reported",
        )

    def handle(self, *args, **options):
        problems = list(chain_verify())
        total = AuditEntry.objects.count()
        head = chain_head()
        heads = chain_heads()
        if options["json"]:
            report = {
                "ok": not problems,
                "entries": total,
                "head": {"seq": head.seq, "hash": head.hash, "time": head.time.isoformat() if head.time else None}
                if head else {"seq": 0, "hash": None, "time": None},
                "heads": [h.as_dict() for h in heads],
                "problems": [
                    {"seq": p.seq, "partition": p.partition, "row_id": p.row_id, "kind": p.kind, "message": p.message}
                    for p in problems
                ],
            }
            self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))
        else:
            for problem in problems:
                self.stderr.write(f"BROKEN ({problem.kind}): {problem.message}")
            if head:
                self.stdout.write(
                    f"Head: seq {head.seq}, hash {head.hash}, time {head.time.isoformat() if head.time else '-'}"
                    f" ({len(heads)} partition chain{'s' if len(heads) != 1 else ''})"
                )
                for h in heads if len(heads) > 1 else ():
                    self.stdout.write(f"  partition {h.partition}: position {h.position}, seq {h.seq}, hash {h.hash}")
            else:
                self.stdout.write("Head: empty log")
        if problems:
            raise CommandError(
                f"Audit chain BROKEN: {len(problems)} problem(s) in {total} entries; first: {problems[0].message}",
                returncode=1,
            )
        if not options["json"]:
            self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {total} entries."))
