"""Verify the consent chain and the stored states against the events (exit status 1 on any problem)."""

import json

from django.core.management.base import BaseCommand

from audit.verification import snapshot
from consent.chain import chain_check
from consent.verification import state_problems, states_check


class Command(BaseCommand):
    help = (
        "Check that no consent event or amendment was changed, moved to another profile, removed, "
        "inserted or reordered, and (unless --skip-state) that every stored consent state is exactly "
        "what the events produce. Reports every problem, always prints the chain head (seq, hash, "
        "time) and exits with status 1 on any problem."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print one JSON document instead of text.")
        parser.add_argument("--skip-state", action="store_true",
                            help="Only the chain; skip the state-versus-events check (which reads every event).")

    def handle(self, *args, json=False, skip_state=False, **options):  # noqa: A002 - the option's name
        states_checked = None
        with snapshot():  # one consistent view while writers keep working
            run = chain_check()
            problems = list(run.problems)
            if not skip_state:
                report = states_check()
                states_checked = report.checked
                problems += state_problems(report)
        head = {"seq": run.head.seq, "hash": run.head.hash,
                "time": run.head.at.isoformat() if run.head.at else None}
        if json:
            self.stdout.write(_json({
                "chain": "consent", "ok": not problems, "checked": run.checked, "states_checked": states_checked,
                "head": head, "problems": [{"seq": p.seq, "row_id": str(p.row_id) if p.row_id is not None else None,
                                            "kind": p.kind, "message": p.message} for p in problems],
            }))
        else:
            for problem in problems:
                self.stdout.write(f"{problem.kind}: {problem.message}")
            self.stdout.write(f"head: seq={head['seq']} hash={head['hash']} time={head['time'] or '-'}")
            summary = f"{run.checked} chain row(s) checked"
            if states_checked is not None:
                summary += f", {states_checked} state(s) compared with the events"
            if problems:
                self.stdout.write(self.style.ERROR(f"consent chain BROKEN: {len(problems)} problem(s); {summary}"))
            else:
                self.stdout.write(self.style.SUCCESS(f"consent chain OK: {summary}"))
        if problems:
            raise SystemExit(1)


def _json(document: dict) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2)
