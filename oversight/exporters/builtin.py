"""The built-in export formats: CSV, JSON Lines, XLSX (write-only) and a PDF summary."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from functools import lru_cache
from typing import IO

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from governance.spreadsheet import formula_risky, formula_safe
from oversight.exporters import register
from oversight.exporters.base import BaseExporter, ReportTable

FLUSH_ROWS = 2000
XLSX_MAX_ROWS = 1_048_575  # Excel's sheet limit minus the header row
PDF_MAX_ROWS = 500
PDF_FONT = "HeiseiKakuGo-W5"


@register
class CsvExporter(BaseExporter):
    identifier = "csv"
    verbose_name = _("CSV (UTF-8)")
    media_type = "text/csv; charset=utf-8"
    extension = "csv"
    streaming = True

    def stream(self, table: ReportTable) -> Iterator[bytes]:
        buffer = io.StringIO()
        # The byte-order mark makes Excel read Japanese text as UTF-8.
        buffer.write("\ufeff")
        writer = csv.writer(buffer, lineterminator="\r\n")
        # Text a spreadsheet would run as a formula gets an apostrophe (governance.spreadsheet).
        writer.writerow([formula_safe(str(column.label)) for column in table.columns])
        pending = 0
        for row in table.rows:
            writer.writerow([formula_safe(v) if isinstance(v, str) else v for v in row])
            pending += 1
            if pending >= FLUSH_ROWS:
                yield buffer.getvalue().encode("utf-8")
                buffer.seek(0)
                buffer.truncate()
                pending = 0
        if buffer.tell():
            yield buffer.getvalue().encode("utf-8")


@register
class JsonLinesExporter(BaseExporter):
    identifier = "jsonl"
    verbose_name = _("JSON Lines")
    media_type = "application/x-ndjson; charset=utf-8"
    extension = "jsonl"
    streaming = True

    def stream(self, table: ReportTable) -> Iterator[bytes]:
        keys = [column.key for column in table.columns]
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
        lines: list[str] = []
        for row in table.rows:
            lines.append(dumps(dict(zip(keys, row, strict=True))))
            if len(lines) >= FLUSH_ROWS:
                yield ("\n".join(lines) + "\n").encode("utf-8")
                lines = []
        if lines:
            yield ("\n".join(lines) + "\n").encode("utf-8")


@register
class XlsxExporter(BaseExporter):
    identifier = "xlsx"
    verbose_name = _("Excel workbook (XLSX)")
    media_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    extension = "xlsx"

    def stream(self, table: ReportTable) -> Iterator[bytes]:
        return self.stream_from_file(lambda handle: self._build(table, handle))

    def _build(self, table: ReportTable, handle: IO[bytes]) -> None:
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font

        # write_only keeps memory flat: rows go to a temporary XML file as they are appended.
        workbook = Workbook(write_only=True)
        header = [column.label for column in table.columns]
        bold = Font(bold=True)

        def text_cell(sheet, value: str):
            # openpyxl writes text starting with "=" as a formula; a string cell with the quote
            # prefix shows the text as it is and stays text when someone edits it.
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"
            cell.quotePrefix = True
            return cell

        def safe_row(sheet, row):
            return [text_cell(sheet, v) if isinstance(v, str) and (v[:1] == "=" or formula_risky(v)) else v
                    for v in row]

        def new_sheet(number: int):
            sheet = workbook.create_sheet(title=str(table.title)[:25] + (f" {number}" if number > 1 else ""))
            sheet.freeze_panes = "A2"
            cells = []
            for label in header:
                cell = text_cell(sheet, str(label))
                cell.font = bold
                cells.append(cell)
            sheet.append(cells)
            return sheet

        sheet_number, in_sheet = 1, 0
        sheet = new_sheet(sheet_number)
        for row in table.rows:
            if in_sheet >= XLSX_MAX_ROWS:
                sheet_number += 1
                sheet, in_sheet = new_sheet(sheet_number), 0
            sheet.append(safe_row(sheet, row))
            in_sheet += 1
        if table.meta or table.summary:
            info = workbook.create_sheet(title=gettext("About"))
            for label, value in [*table.meta, *table.summary]:
                info.append([text_cell(info, str(label)), text_cell(info, str(value))])
        workbook.save(handle)


@lru_cache(maxsize=1)
def _pdf_font() -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    # A CID font ships with reportlab (no file to download) and renders Japanese.
    pdfmetrics.registerFont(UnicodeCIDFont(PDF_FONT))
    return PDF_FONT


@register
class PdfExporter(BaseExporter):
    identifier = "pdf"
    verbose_name = _("PDF summary")
    media_type = "application/pdf"
    extension = "pdf"

    def stream(self, table: ReportTable) -> Iterator[bytes]:
        return self.stream_from_file(lambda handle: self._build(table, handle))

    def _build(self, table: ReportTable, handle: IO[bytes]) -> None:
        from reportlab.lib import colors
        from reportlab.lib.pagesizes import A4, landscape
        from reportlab.lib.styles import ParagraphStyle
        from reportlab.lib.units import mm
        from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

        font = _pdf_font()
        title_style = ParagraphStyle("t", fontName=font, fontSize=15, leading=20, spaceAfter=6)
        text = ParagraphStyle("b", fontName=font, fontSize=9, leading=12)
        cell = ParagraphStyle("c", fontName=font, fontSize=6.5, leading=8, wordWrap="CJK")
        doc = SimpleDocTemplate(
            handle, pagesize=landscape(A4), leftMargin=10 * mm, rightMargin=10 * mm,
            topMargin=10 * mm, bottomMargin=10 * mm, title=str(table.title), author="Mamoru",
        )
        story = [Paragraph(_escape(table.title), title_style)]
        for label, value in [*table.meta, *table.summary]:
            story.append(Paragraph(f"<b>{_escape(label)}</b>: {_escape(value)}", text))
        for note in table.notes:
            story.append(Paragraph(_escape(note), text))
        story.append(Spacer(1, 4 * mm))

        data = [[Paragraph(_escape(c.label), cell) for c in table.columns]]
        shown, total = 0, 0
        for row in table.rows:
            total += 1
            if shown < PDF_MAX_ROWS:
                data.append([Paragraph(_escape("" if v is None else v), cell) for v in row])
                shown += 1
        grid = Table(data, repeatRows=1)
        grid.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef3")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story.append(grid)
        story.append(Spacer(1, 3 * mm))
        story.append(Paragraph(_escape(gettext("Rows: %(total)d") % {"total": total}), text))
        if total > shown:
            story.append(
                Paragraph(
                    _escape(
                        gettext("The first %(shown)d rows are shown; export CSV or XLSX for all of them.")
                        % {"shown": shown}
                    ),
                    text,
                )
            )
        doc.build(story)


def _escape(value) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
