"""The built-in export formats: CSV, JSON Lines, XLSX (write-only) and a PDF summary."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import IO

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from governance.spreadsheet import formula_risky, formula_safe
from oversight.exporters import register
from oversight.exporters.base import BaseExporter, ReportTable

FLUSH_ROWS = 2000
XLSX_MAX_ROWS = 1_048_575  # Excel's sheet limit minus the header row
PDF_MAX_ROWS = 500


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


CELL_PT = 6.5
CELL_PADDING_PT = 6  # reportlab's default cell padding, left + right
MAX_COLUMN_MM = 70
MIN_COLUMN_MM = 12
CJK_HEADER_MIN_MM = 30  # a Japanese header may wrap between characters beyond this


def _is_cjk(text: str) -> bool:
    return any("\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef" for ch in text)


def pdf_column_widths(headers: list[str], rows: list[list[str]], *, available: float, font: str,
                      bold: str, size: float = CELL_PT) -> list[float]:
    """Column widths (points) that fit ``available``: each at least its header's longest word (so
    headers never break inside a word), the rest shared by how much text each column holds."""
    from reportlab.lib.units import mm
    from reportlab.pdfbase.pdfmetrics import stringWidth

    minimum, natural = [], []
    for index, header in enumerate(headers):
        words = header.split() or [header]
        longest = max(stringWidth(word, bold, size) for word in words)
        if _is_cjk(header):
            longest = min(longest, CJK_HEADER_MIN_MM * mm)
        low = max(longest + CELL_PADDING_PT, MIN_COLUMN_MM * mm)
        content = max((stringWidth(row[index], font, size) for row in rows[:200]), default=0.0)
        full = max(stringWidth(header, bold, size), content) + CELL_PADDING_PT
        minimum.append(low)
        natural.append(max(low, min(full, MAX_COLUMN_MM * mm)))
    if sum(natural) <= available:
        scale = available / sum(natural)
        return [w * scale for w in natural]
    spare = max(0.0, available - sum(minimum))
    extra = [n - m for n, m in zip(natural, minimum, strict=True)]
    total_extra = sum(extra) or 1.0
    return [m + spare * e / total_extra for m, e in zip(minimum, extra, strict=True)]


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

        from oversight.exporters.pdf_fonts import pdf_fonts_for, pdf_fonts_release

        headers = [str(c.label) for c in table.columns]
        shown: list[list[str]] = []
        total = 0
        for row in table.rows:
            total += 1
            if len(shown) < PDF_MAX_ROWS:
                shown.append(["" if v is None else str(v) for v in row])
        lines = [(str(label), str(value)) for label, value in [*table.meta, *table.summary]]
        count_line = gettext("Rows: %(total)d") % {"total": total}
        if total > len(shown):
            count_line += " — " + gettext(
                "The first %(shown)d rows are shown; export CSV or XLSX for all of them.") % {"shown": len(shown)}
        texts = [str(table.title), count_line, *headers, *(t for pair in lines for t in pair),
                 *map(str, table.notes), *(cell for row in shown for cell in row)]
        fonts = pdf_fonts_for("".join(texts))
        try:
            title_style = ParagraphStyle("t", fontName=fonts.bold, fontSize=15, leading=20, spaceAfter=6)
            text = ParagraphStyle("b", fontName=fonts.regular, fontSize=9, leading=12)
            strong = ParagraphStyle("s", parent=text, fontName=fonts.bold)
            cell = ParagraphStyle("c", fontName=fonts.regular, fontSize=CELL_PT, leading=8, wordWrap="CJK")
            head = ParagraphStyle("h", fontName=fonts.bold, fontSize=CELL_PT, leading=8)
            head_cjk = ParagraphStyle("hj", parent=head, wordWrap="CJK")
            page = landscape(A4)
            doc = SimpleDocTemplate(
                handle, pagesize=page, leftMargin=10 * mm, rightMargin=10 * mm,
                topMargin=10 * mm, bottomMargin=10 * mm, title=str(table.title), author="Mamoru",
                # Pages start in our font: no unembedded base-14 font (Helvetica) is referenced.
                initialFontName=fonts.regular,
            )
            # The row count first, on page one: the reader knows at once how much the report holds.
            story = [Paragraph(_escape(table.title), title_style), Paragraph(_escape(count_line), strong)]
            for label, value in lines:
                story.append(Paragraph(f'<font name="{fonts.bold}">{_escape(label)}</font>: {_escape(value)}', text))
            for note in table.notes:
                story.append(Paragraph(_escape(note), text))
            story.append(Spacer(1, 4 * mm))
            widths = pdf_column_widths(headers, shown, available=page[0] - 20 * mm, font=fonts.regular,
                                       bold=fonts.bold)
            data = [[Paragraph(_escape(h), head_cjk if _is_cjk(h) else head) for h in headers]]
            data += [[Paragraph(_escape(v), cell) for v in row] for row in shown]
            grid = Table(data, colWidths=widths, repeatRows=1)
            grid.setStyle(
                TableStyle(
                    [
                        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef3")),
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                        ("FONTNAME", (0, 0), (-1, -1), fonts.regular),
                    ]
                )
            )
            story.append(grid)
            doc.build(story)
        finally:
            pdf_fonts_release(fonts)


def _escape(value) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
