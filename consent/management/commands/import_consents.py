"""Import consent decisions from CSV.

Columns: ``workspace, identity_kind, identity_value, purpose, state`` and optional
``identity_namespace, occurred_at, purpose_version, jurisdiction, language, notice_url``.
Rows are validated one by one with the field rules of the events API (``EventInSerializer``) and
the service's own checks; bad rows go to the rejected-rows report (CSV with the reason, never the
identity value), good rows are recorded in batches of 500 with method ``import``.
"""

from __future__ import annotations

import codecs
import csv
import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rest_framework import serializers

from consent.api import EventInSerializer  # the API's field rules (read-only reuse)
from consent.models import Method
from consent.services import (
    BatchRejected,
    EventInput,
    RecordContext,
    _prepare,  # validation shared with the API
    consent_events_record,
    parse_time,
)
from governance.api.errors import DomainError
from governance.spreadsheet import csv_dict_writer
from governance.subjects.models import Jurisdiction, Workspace

REQUIRED = ("workspace", "identity_kind", "identity_value", "purpose", "state")
OPTIONAL = ("identity_namespace", "occurred_at", "purpose_version", "jurisdiction", "language", "notice_url")
REPORT_FIELDS = ("line", "code", "reason", "workspace", "identity_kind", "purpose", "state")
REPORT_HEADER = ",".join(REPORT_FIELDS)
IDENTITY_COLUMNS = {"kind": "identity_kind", "value": "identity_value", "namespace": "identity_namespace"}
API_COLUMNS = ("purpose", "state", "purpose_version", "jurisdiction", "language", "notice_url")
SKIP_WHEN_BLANK = ("purpose_version", "jurisdiction")  # optional in the API: blank means "not given"
DEFAULT_ENCODING = "utf-8-sig"
BATCH = 500

HELP = (
    "Import consent decisions from a CSV file (method 'import'). Every row is checked like an API "
    "call; bad rows are not recorded but listed in the rejected-rows report (line, code, reason; "
    "never the identity value) and the import goes on."
)


class RowRejected(DomainError):
    code = "invalid_row"


class WrongFieldCount(RowRejected):
    """The columns are shifted: no value of the row is safe to repeat in the report."""

    code = "wrong_field_count"


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser):
        parser.add_argument(
            "file",
            help=(
                "CSV file with a header row. Required columns: " + ", ".join(REQUIRED) + ". Optional: "
                + ", ".join(OPTIONAL) + ". jurisdiction is one of " + ", ".join(Jurisdiction.values)
                + " (blank: the workspace's default); occurred_at is ISO 8601 (no offset: UTC)."
            ),
        )
        parser.add_argument(
            "--dry-run", action="store_true",
            help="Validate every row and write the rejected-rows report, but record nothing.",
        )
        parser.add_argument(
            "--rejected", metavar="OUT.csv",
            help=(
                "Where to write the rejected rows (default: FILE with the suffix .rejected.csv). The "
                "directory must exist. When no row is rejected, an old rejected-rows report at this path is "
                "removed, "
                "so a report on disk always belongs to the last run."
            ),
        )
        parser.add_argument(
            "--encoding", default=DEFAULT_ENCODING,
            help=(
                f"Text encoding of FILE (default {DEFAULT_ENCODING}: UTF-8 with or without a BOM, as "
                "Excel's 'CSV UTF-8' saves it). Use cp932 for Shift_JIS files saved by Japanese Excel."
            ),
        )

    def handle(self, *args, file, dry_run=False, rejected=None, encoding=DEFAULT_ENCODING, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        rejected_path = Path(rejected) if rejected else path.with_suffix(".rejected.csv")
        self._check_report_path(rejected_path, source=path)
        self._check_readable(path, encoding)  # a decoding error must not stop the import half-way
        workspaces = {w.slug: w for w in Workspace.objects.all()}
        fields = _api_fields()
        good: dict[str, list[EventInput]] = {}
        bad: list[dict] = []
        total = recorded = 0
        with path.open(newline="", encoding=encoding) as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames:
                reader.fieldnames = [(name or "").strip().lstrip("\ufeff") for name in reader.fieldnames]
            columns = reader.fieldnames or []
            missing = [c for c in REQUIRED if c not in columns]
            if missing:
                raise CommandError(f"{path}: missing column(s): {', '.join(missing)}")
            for row in reader:
                total += 1
                try:
                    workspace, item = self._row_input(row, workspaces, len(columns), fields)
                    _prepare(item, RecordContext(workspace=workspace))
                except (DomainError, ValueError) as exc:
                    bad.append({
                        "line": reader.line_num, "code": getattr(exc, "code", "invalid"),
                        "reason": getattr(exc, "detail", str(exc)),
                        **{k: "" if isinstance(exc, WrongFieldCount) else (row.get(k) or "")
                           for k in REPORT_FIELDS[3:]},
                    })
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
        self._report(rejected_path, bad)
        verb = "would be recorded (dry run)" if dry_run else "recorded"
        self.stdout.write(self.style.SUCCESS(f"{total} row(s) read, {valid if dry_run else recorded} {verb}"))

    # --- checks before anything is imported ---------------------------------------------------

    def _check_report_path(self, report: Path, *, source: Path) -> None:
        if report.exists() and report.resolve() == source.resolve():
            raise CommandError(f"--rejected {report} is the input file; choose another path.")
        if report.is_dir():
            raise CommandError(f"--rejected {report} is a directory; give a file name.")
        directory = report.parent
        if not directory.is_dir():
            raise CommandError(f"Cannot write the rejected-rows report: the directory {directory} does not exist.")
        if not os.access(directory, os.W_OK) or (report.exists() and not os.access(report, os.W_OK)):
            raise CommandError(f"Cannot write the rejected-rows report {report}: permission denied.")

    def _check_readable(self, path: Path, encoding: str) -> None:
        try:
            b"\n".decode(encoding)  # LookupError for unknown codecs and non-text ones (base64, …)
        except LookupError:
            raise CommandError(f"Unknown text encoding {encoding!r} (try utf-8-sig or cp932).") from None
        except ValueError:  # UnicodeDecodeError: e.g. utf-16 needs two bytes; the file decides below
            pass
        number = 0
        try:
            decoder = codecs.getincrementaldecoder(encoding)()
            with path.open("rb") as raw:
                for line in raw:  # line by line, to say where
                    number += 1
                    decoder.decode(line)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise CommandError(
                f"{path} is not valid {encoding} text ({exc.reason} near line {number}); nothing was imported. "
                "Save it as UTF-8 (Excel: 'CSV UTF-8'), or name its encoding, e.g. --encoding cp932 for Shift_JIS."
            ) from None
        reader = None
        try:
            with path.open(newline="", encoding=encoding) as handle:
                reader = csv.reader(handle)
                for _row in reader:
                    pass
        except csv.Error as exc:
            line = reader.line_num if reader is not None else "?"
            raise CommandError(f"{path}: not a readable CSV file (line {line}: {exc}); nothing was imported.") from None

    # --- one row ------------------------------------------------------------------------------

    def _row_input(self, row: dict, workspaces: dict, width: int, fields: dict) -> tuple[Workspace, EventInput]:
        """The row as an event, checked with the API's field rules; raises a DomainError."""
        extra = row.get(None)
        if extra is not None or any(value is None for value in row.values()):
            given = width + len(extra) if extra is not None else sum(
                1 for key, value in row.items() if key is not None and value is not None
            )
            raise WrongFieldCount(
                f"The row has {given} field(s), the header has {width}. Check for missing or extra "
                "commas (quote values that contain a comma)."
            )
        values = {key: (value or "").strip() for key, value in row.items()}
        workspace = workspaces.get(values.get("workspace", ""))
        if workspace is None:
            raise DomainError("unknown workspace", code="unknown_workspace")
        v, problems = {}, []
        for column, field in fields.items():
            value = values.get(column, "")
            if not value and column in SKIP_WHEN_BLANK:
                continue
            if column == "purpose_version":
                try:
                    value = int(value)
                except ValueError:
                    pass  # the field says why
            try:
                v[column] = field.run_validation(value)
            except serializers.ValidationError as exc:
                details = exc.detail if isinstance(exc.detail, list) else [exc.detail]
                problems += [(column, str(d), getattr(d, "code", None) or "invalid") for d in details]
        if problems:
            raise RowRejected("; ".join(f"{column}: {message}" for column, message, _c in problems),
                              code=problems[0][2])
        occurred_at = parse_time(values.get("occurred_at") or None)
        return workspace, EventInput(
            purpose=v["purpose"], state=v["state"], method=Method.IMPORT,
            identity_kind=v["identity_kind"], identity_value=v["identity_value"],
            identity_namespace=v["identity_namespace"],
            occurred_at=occurred_at, purpose_version=v.get("purpose_version"),
            jurisdiction=v.get("jurisdiction", ""), language=v.get("language", ""),
            notice_url=v.get("notice_url", ""),
        )

    # --- output -------------------------------------------------------------------------------

    def _report(self, report: Path, bad: list[dict]) -> None:
        try:
            if bad:
                with report.open("w", newline="", encoding="utf-8") as out:
                    # Rows come from an untrusted file and the DPO opens this in a spreadsheet.
                    writer = csv_dict_writer(out, fieldnames=REPORT_FIELDS)
                    writer.writeheader()
                    writer.writerows(bad)
                self.stdout.write(f"{len(bad)} row(s) rejected — see {report}")
            elif report.is_file() and _is_report(report):
                report.unlink()
                self.stdout.write(f"No row rejected; removed the old report {report} (from an earlier run).")
            elif report.exists():
                self.stdout.write(f"No row rejected; left {report} alone (it is not a rejected-rows report).")
            else:
                self.stdout.write("No row rejected.")
        except OSError as exc:
            raise CommandError(f"Cannot write the rejected-rows report {report}: {exc}") from None

    def _flush(self, workspace, items) -> int:
        try:
            result = consent_events_record(items=items, ctx=RecordContext(workspace=workspace, actor_label="import"))
        except BatchRejected as exc:  # validated already; only a race could get here
            self.stderr.write(f"batch rejected: {exc.detail}")
            sys.exit(1)
        self.stderr.write(f"… {len(result.events)} recorded")
        return len(result.events)


def _api_fields() -> dict:
    """CSV column → the events API's own (bound) serializer field, built once per run."""
    event = EventInSerializer().fields
    identity = event["identity"].fields
    fields = {column: identity[name] for name, column in IDENTITY_COLUMNS.items()}
    fields.update({name: event[name] for name in API_COLUMNS})
    return fields


def _is_report(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.readline().strip().startswith("line,code,reason")
    except OSError:
        return False
