"""Formula text is written as text in every CSV/XLSX file Mamoru produces (OWASP CSV injection).

Every writer goes through governance/spreadsheet.py (a guard test reads the code); each export a
DPO or data subject opens in a spreadsheet is checked with the same hostile values.
"""

from __future__ import annotations

import ast
import csv
import io
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from openpyxl import load_workbook

from governance.spreadsheet import formula_risky

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("audit", "consent", "dsr", "governance", "oversight")

# What someone can type into a name, a reason or an uploaded file.
HOSTILE = ['=HYPERLINK("http://x","y")', "@SUM(1+1)", "\t=1+1", "\r=1+1", " =1+1", "-2+3+cmd|' /C calc'!A0"]
# Plain signed numbers: read as numbers, they cannot call anything (and phone numbers stay legible).
NUMBERS = ["+1", "-1"]


def _assert_neutralised(values: list[str]) -> None:
    for hostile in HOSTILE:
        assert "'" + hostile in values, (hostile, values)
    for number in NUMBERS:
        assert number in values, (number, values)
    assert not any(formula_risky(value) for value in values), values


def _writes_spreadsheets(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "csv" \
                and node.attr in {"writer", "DictWriter"}:
            return True
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if any(name.split(".")[0] == "openpyxl" for name in names):
                return True
    return False


def _uses_spreadsheet_helpers(tree: ast.AST) -> bool:
    return any(isinstance(node, ast.ImportFrom) and node.module == "governance.spreadsheet"
               for node in ast.walk(tree))


def test_every_module_writing_csv_or_xlsx_uses_the_formula_helpers():
    offenders = []
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts or path.name == "spreadsheet.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if _writes_spreadsheets(tree) and not _uses_spreadsheet_helpers(tree):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"CSV/XLSX written without governance.spreadsheet: {offenders}"


@pytest.mark.django_db
def test_consent_import_rejected_rows_report_writes_formulas_as_text(tmp_path, workspaces):
    # given an uploaded file whose rows carry formula text where the report echoes them
    source = tmp_path / "consents.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["workspace", "identity_kind", "identity_value", "purpose", "state"])
        for value in [*HOSTILE, *NUMBERS]:
            writer.writerow([value, "email", "a@example.jp", "analytics", "given"])
            writer.writerow([workspaces[0].slug, value, "a@example.jp", value, value])
    # when the import rejects them
    call_command("import_consents", str(source), "--dry-run", stdout=io.StringIO(), stderr=io.StringIO())
    # then the report the DPO opens shows the text, never a formula
    with (tmp_path / "consents.rejected.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * (len(HOSTILE) + len(NUMBERS))
    for column in ("workspace", "identity_kind", "purpose", "state"):
        _assert_neutralised([row[column] for row in rows if row[column] not in ("", workspaces[0].slug)])
    assert not any(formula_risky(row["reason"]) for row in rows)


def test_access_package_csv_writes_formulas_as_text():
    from dsr.package import _csv

    # given a collection of the subject's data whose values came from a form
    part = SimpleNamespace(columns=[SimpleNamespace(name="name"), SimpleNamespace(name="=note")],
                           rows=[{"name": value, "=note": value} for value in [*HOSTILE, *NUMBERS]])
    # when it is written as the package's CSV file
    rows = list(csv.reader(io.StringIO(_csv(part).decode("utf-8-sig"))))
    # then
    assert rows[0] == ["name", "'=note"]  # column names come from the connected stores
    _assert_neutralised([row[0] for row in rows[1:]])
    _assert_neutralised([row[1] for row in rows[1:]])


def test_report_exports_write_formulas_as_text_in_csv_and_xlsx():
    from oversight.exporters import exporter_get
    from oversight.exporters.base import Column, ReportTable

    def table():
        return ReportTable(title="Subjects", columns=[Column("name", "Name")],
                           rows=iter([(value,) for value in [*HOSTILE, *NUMBERS]]),
                           meta=[("workspace", HOSTILE[0])])

    csv_rows = list(csv.reader(io.StringIO(b"".join(exporter_get("csv").stream(table())).decode("utf-8-sig"))))
    _assert_neutralised([row[0] for row in csv_rows[1:]])
    xlsx = b"".join(exporter_get("xlsx").stream(table()))
    with zipfile.ZipFile(io.BytesIO(xlsx)) as archive:
        assert not any(b"<f>" in archive.read(name) for name in archive.namelist())
    cells = list(load_workbook(io.BytesIO(xlsx)).worksheets[0]["A"])[1:]
    # every value reads back exactly as typed, as a string cell (signed numbers included)
    expected = [value.replace("\r", "\n") for value in [*HOSTILE, *NUMBERS]]  # XML keeps no bare CR
    assert [c.value for c in cells] == expected
    assert all(c.data_type == "s" for c in cells)
    assert all(c.quotePrefix for c in cells[: len(HOSTILE)])
