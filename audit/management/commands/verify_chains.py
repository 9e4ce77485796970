"""Run the scheduled chain verification now (exit status 1 on any problem)."""

import json

from django.core.management.base import BaseCommand

from audit.verification import chains_verify, heads_export


class Command(BaseCommand):
    help = (
        "Verify every registered evidence chain (audit log, consent events and consent state) as the "
        "scheduled job does: continue from the last clean run, or --full from the start; compare the "
        "database with the signed heads exported to MAMORU_CHAIN_HEADS_DIR; record the run (shown on "
        "the dashboard), e-mail the DPO group on a break, and append the current heads when all is "
        "clean. Exit status 1 on any problem."
    )

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true", help="Verify every chain from its first entry.")
        parser.add_argument("--json", action="store_true", help="Print one JSON document instead of text.")
        parser.add_argument("--no-export", action="store_true", help="Do not append the heads afterwards.")
        parser.add_argument("--no-mail", action="store_true", help="Do not e-mail the DPO group on a break.")
        parser.add_argument(
            "--accept-heads", metavar="REASON", default="",
            help="After the run, export the current heads even if they do not extend the last export "
                 "(after restoring a backup); the reason is kept in the signed line.",
        )

    def handle(self, *args, full=False, json=False, no_export=False, no_mail=False, accept_heads="",
               **options):  # noqa: A002
        summary = chains_verify(full=full, export=not no_export, notify=not no_mail)
        run = summary.run
        if accept_heads.strip():
            heads_export(accepted=accept_heads.strip())
            self.stderr.write(f"current heads exported as accepted: {accept_heads.strip()}")
        if json:
            self.stdout.write(_dumps({
                "ok": run.ok, "full": run.full, "checked": run.checked, "started_at": run.started_at.isoformat(),
                "chains": run.chains,
                "problems": [{"chain": c, "seq": p.seq, "kind": p.kind, "message": p.message,
                              "partition": getattr(p, "partition", None)} for c, p in summary.problems],
            }))
        else:
            for name, info in sorted(run.chains.items()):
                self.stdout.write(f"{name}: {info['checked']} entries checked, {info['problems']} problem(s)")
            for chain, problem in summary.problems:
                self.stdout.write(f"{chain}: {problem.kind}: {problem.message}")
            if run.ok:
                self.stdout.write(self.style.SUCCESS(f"all chains intact ({run.checked} entries checked)"))
            else:
                self.stdout.write(self.style.ERROR(f"BROKEN: {run.problem_count} problem(s)"))
        if not run.ok:
            raise SystemExit(1)


def _dumps(document: dict) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2, default=str)
