"""PDF reports people can read (issue 15, item 3), checked by reading the PDF back (fonts with
pypdf; text with pdfminer.six, whose ToUnicode handling of reportlab's TrueType subsets is right):
fonts embedded (Japanese included), headers whole, row count on page one, columns that fit,
and the records of processing in Japanese with the systems (data map) column filled."""

from __future__ import annotations

import io
import re

import pytest
from django.utils import translation
from pdfminer.high_level import extract_text
from pypdf import PdfReader

from oversight.exporters.base import Column, ReportTable
from oversight.exporters.builtin import pdf_column_widths
from oversight.exporters.services import audit_export_create, audit_export_stream
from tests.factories import make_profile

pytestmark = pytest.mark.django_db

DATAMAP = """\
version: 1
stores:
  shop:
    type: sql
    name: Web shop database
    connection: {url: "sqlite:///%(path)s"}
    collections:
      customers:
        fields:
          id: {primary_key: true, identity: customer_id, namespace: shop}
          email: {category: user.contact.email, identity: email, strategy: hash}
          name: {category: user.name, strategy: random_rewrite}
      orders:
        fields:
          id: {primary_key: true}
          customer_id: {references: [shop.customers.id]}
          placed_at: {category: user.behavior.purchase_history, strategy: retain, legal_basis: "Tax law", retention: 7 years}
  crm:
    type: sql
    name: CRM
    connection: {url: "sqlite:///%(path)s"}
    collections:
      contacts:
        fields:
          id: {primary_key: true, identity: customer_id, namespace: crm}
          mail: {category: user.contact.email, identity: email, strategy: hash}
"""


def _pdf(user, report: str, *, lang: str, **filters) -> bytes:
    with translation.override(lang):
        export = audit_export_create(user=user, report=report, fmt="pdf", filters=filters, streamed=True,
                                     locale=lang)
    return b"".join(audit_export_stream(export=export, user=user))


def _pages(data: bytes) -> list[str]:
    return [extract_text(io.BytesIO(data), page_numbers=[n]) for n in range(len(PdfReader(io.BytesIO(data)).pages))]


def _fonts(data: bytes) -> dict[str, bool]:
    """Base font name -> embedded (a font file in its descriptor), over every page."""
    reader = PdfReader(io.BytesIO(data))
    found = {}
    for page in reader.pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            descendants = font.get("/DescendantFonts")
            target = descendants[0].get_object() if descendants else font
            descriptor = target.get("/FontDescriptor")
            descriptor = descriptor.get_object() if descriptor is not None else {}
            found[str(font["/BaseFont"])] = any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3"))
    return found


@pytest.fixture
def seeded(workspaces, tmp_path):
    from consent.demo import purposes_seed
    from consent.selectors import catalogue
    from governance.datamap.services import datamap_load_text

    catalogue.invalidate()
    purposes_seed()
    catalogue.invalidate()
    datamap_load_text(text=DATAMAP % {"path": tmp_path / "shop.sqlite3"}, offline=True)
    yield
    catalogue.invalidate()


def test_records_of_processing_pdf_in_japanese(seeded, role_users):
    # when
    data = _pdf(role_users["auditor"], "records_of_processing", lang="ja")
    # then: every font embedded (no viewer font needed), Japanese headers
    fonts = _fonts(data)
    assert fonts and all(fonts.values()), fonts
    pages = _pages(data)
    flat = "".join(pages).replace("\n", "").replace(" ", "")
    for header in ("処理活動の記録", "法的根拠", "データの種類", "システム（データマップ）", "保存期間"):
        assert header in flat, header
    assert re.search(r"(行数|Rows): ?6", pages[0].replace("\n", " "))  # the count, on page one
    # the systems column is filled from the data map (contact.email, name: both stores)
    assert "crm, shop" in "".join(pages)


def test_access_log_pdf_row_count_on_first_page_and_headers_whole(workspaces, role_users):
    from audit.services import access_record

    profile = make_profile(workspaces[0], locale="ja_JP", seed=3)
    for _ in range(3):
        access_record(actor=role_users["support_agent"], obj=profile, fields=["full_name"], reason="問い合わせ対応")
    data = _pdf(role_users["auditor"], "access_log", lang="en")
    first = _pages(data)[0]
    count = int(re.search(r"Rows: (\d+)", first).group(1))
    assert count >= 3 and first.count("問い合わせ対応") == 0  # reasons stay masked/plain as stored
    for header in ("Time (UTC)", "Actor"):
        assert header in first  # whole, on one line
    assert all(_fonts(data).values())


def test_column_widths_fit_the_page_and_keep_header_words_whole():
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.units import mm
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from oversight.exporters.pdf_fonts import pdf_fonts_for, pdf_fonts_release

    headers = ["Seq", "Time (UTC)", "Security measures (Art. 32)", "Transfer to third country", "Categories",
               "Description", "Recipients", "Notice version", "Legal basis (Art. 6)", "Systems (data map)",
               "Retention", "APPI category", "CCPA category"]
    rows = [["1", "2026-05-01T10:00:00Z", "encryption at rest " * 8, "", "contact, name",
             "A long description of the purpose " * 5, "Ad partners", "3", "consent", "shop, crm", "730 days",
             "", ""]] * 5
    fonts = pdf_fonts_for("".join(headers) + "".join(rows[0]))
    try:
        available = landscape(A4)[0] - 20 * mm
        widths = pdf_column_widths(headers, rows, available=available, font=fonts.regular, bold=fonts.bold)
        assert sum(widths) == pytest.approx(available, abs=0.5)
        for header, width in zip(headers, widths, strict=True):
            longest = max(stringWidth(w, fonts.bold, 6.5) for w in header.split())
            assert width >= longest + 6, header  # no header word is cut
        # the wordy columns get more room than the short ones
        assert widths[5] > widths[0] and widths[2] > widths[7]
    finally:
        pdf_fonts_release(fonts)


def test_pdf_without_rows_still_says_how_many():
    from oversight.exporters.builtin import PdfExporter

    table = ReportTable(title="Empty", columns=[Column("a", "Alpha"), Column("b", "日本語の見出し")], rows=iter([]))
    data = b"".join(PdfExporter().stream(table))
    text = _pages(data)[0]
    assert "Rows: 0" in text and "日本語の見出し" in text.replace("\n", "")
    assert all(_fonts(data).values())
