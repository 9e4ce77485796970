"""Import consent decisions from CSV.

Columns: ``workspace, identity_kind, identity_value, purpose, state`` and optional
``identity_namespace, occurred_at, purpose_version, jurisdiction, language, notice_url``.
Rows are validated one by one; bad rows go to the rejected-rows report (CSV with the reason),
good rows are recorded in batches of 500 with method ``import``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from consent.services import (
    BatchRejected,
    EventInput,
    RecordContext,
    _prepare,  # validation shared with the API
    consent_events_record,
    parse_time,
)
from governance.api.errors import DomainError
from governance.subjects.models import Workspace

REQUIRED = ("workspace", "identity_kind", "identity_value", "purpose", "state")
BATCH = 500


class Command(BaseCommand):
    help = "Import consent decisions from a CSV file (method 'import')."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="Validate only; record nothing.")
        parser.add_argument("--rejected", help="Where to write rejected rows (default FILE.rejected.csv).")

    def handle(self, *args, file, dry_run=False, rejected=None, **options):
        path = Path(file)
        if not path.exists():
            raise CommandError(f"{path}: no such file")
        rejected_path = Path(rejected) if rejected else path.with_suffix(".rejected.csv")
        workspaces = {w.slug: w for w in Workspace.objects.all()}
        good: dict[str, list[EventInput]] = {}
        bad: list[dict] = []
        total = recorded = 0
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise CommandError(f"{path}: missing column(s): {', '.join(missing)}")
            for line, row in enumerate(reader, start=2):
                total += 1
                try:
                    workspace = workspaces.get((row.get("workspace") or "").strip())
                    if workspace is None:
                        raise DomainError("unknown workspace", code="unknown_workspace")
                    item = EventInput(
                        purpose=row["purpose"].strip(), state=row["state"].strip(), method="import",
                        identity_kind=row["identity_kind"].strip(), identity_value=row["identity_value"],
                        identity_namespace=(row.get("identity_namespace") or "").strip(),
                        occurred_at=parse_time((row.get("occurred_at") or "").strip() or None),
                        purpose_version=int(row["purpose_version"]) if (row.get("purpose_version") or "").strip() else None,
                        jurisdiction=(row.get("jurisdiction") or "").strip(),
                        language=(row.get("language") or "").strip(),
                        notice_url=(row.get("notice_url") or "").strip(),
                    )
                    if item.state not in ("given", "refused", "withdrawn"):
                        raise DomainError("state must be given, refused or withdrawn", code="invalid_state")
                    _prepare(item, RecordContext(workspace=workspace))
                except (DomainError, ValueError) as exc:
                    bad.append({"line": line, "code": getattr(exc, "code", "invalid"),
                                "reason": getattr(exc, "detail", str(exc)), **{k: row.get(k, "") for k in REQUIRED if k != "identity_value"}})
                    continue
                good.setdefault(workspace.slug, []).append(item)
                if not dry_run and len(good[workspace.slug]) >= BATCH:
                    recorded += self._flush(workspaces[workspace.slug], good.pop(workspace.slug))
                if total % 1000 == 0:
                    self.stderr.write(f"… {total} rows read, {len(bad)} rejected")
        if not dry_run:
            for slug, items in good.items():
                recorded += self._flush(workspaces[slug], items)
        valid = total - len(bad)
        if bad:
            with rejected_path.open("w", newline="", encoding="utf-8") as out:
                writer = csv.DictWriter(out, fieldnames=list(bad[0]))
                writer.writeheader()
                writer.writerows(bad)
            self.stdout.write(f"{len(bad)} row(s) rejected — see {rejected_path}")
        verb = "would be recorded (dry run)" if dry_run else "recorded"
        self.stdout.write(self.style.SUCCESS(f"{total} row(s) read, {valid if dry_run else recorded} {verb}"))

    def _flush(self, workspace, items) -> int:
        try:
            result = consent_events_record(items=items, ctx=RecordContext(workspace=workspace, actor_label="import"))
        except BatchRejected as exc:  # validated already; only a race could get here
            self.stderr.write(f"batch rejected: {exc.detail}")
            sys.exit(1)
        self.stderr.write(f"… {len(result.events)} recorded")
        return len(result.events)
