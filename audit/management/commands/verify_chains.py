"""Run the scheduled chain verification now (exit status 1 on any problem)."""

import json

from django.core.management.base import BaseCommand

from audit.verification import chains_verify


class Command(BaseCommand):
    help = (
        "Verify every registered evidence chain (audit log, consent events and consent state) as the "
        "scheduled job does: continue from the last clean run, or --full from the start; compare the "
        "database with the signed heads exported to the head store (MAMORU_CHAIN_HEADS_URL: a directory, "
        "MAMORU_CHAIN_HEADS_DIR by default, or S3-compatible object storage); record the run (shown on "
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
            help="Accept the current heads as a restart point (after restoring a backup): verify every "
                 "chain from its start and, if they are intact, export their heads although they do not "
                 "extend the last export (the reason is kept in the signed line). Exported heads that "
                 "are replaced are listed, not counted as problems; later runs continue from here.",
        )

    def handle(self, *args, full=False, json=False, no_export=False, no_mail=False, accept_heads="",
               **options):  # noqa: A002
        reason = accept_heads.strip()
        summary = chains_verify(full=full, export=not no_export, notify=not no_mail, accept=reason)
        run = summary.run
        if json:
            self.stdout.write(_dumps({
                "ok": run.ok, "full": run.full, "checked": run.checked, "started_at": run.started_at.isoformat(),
                "chains": run.chains,
                "problems": [{"chain": c, "seq": p.seq, "kind": p.kind, "message": p.message,
                              "partition": getattr(p, "partition", None)} for c, p in summary.problems],
                "accepted": {"reason": reason, "heads": [{"chain": c, "kind": p.kind, "message": p.message}
                                                         for c, p in summary.accepted]}
                if summary.accept_written else None,
            }))
        else:
            for name, info in sorted(run.chains.items()):
                self.stdout.write(f"{name}: {info['checked']} entries checked, {info['problems']} problem(s)")
            for chain, problem in summary.problems:
                self.stdout.write(f"{chain}: {problem.kind}: {problem.message}")
            if summary.accept_written:
                self.stdout.write(f"current heads exported as accepted: {reason}")
                for chain, problem in summary.accepted:
                    self.stdout.write(f"{chain}: accepted in place of: {problem.message}")
            elif reason:
                self.stdout.write(self.style.ERROR("heads NOT accepted: the chains themselves have problems "
                                                   "(or the export failed); see above"))
            if run.ok:
                self.stdout.write(self.style.SUCCESS(f"all chains intact ({run.checked} entries checked)"))
            else:
                self.stdout.write(self.style.ERROR(f"BROKEN: {run.problem_count} problem(s)"))
        if not run.ok:
            raise SystemExit(1)


def _dumps(document: dict) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2, default=str)
