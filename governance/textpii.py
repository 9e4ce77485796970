"""E-mail addresses and phone numbers in text, as people really write them (no Django, no models).

One place for the patterns that keep identities out of stored free text and out of log lines:

- :func:`pii_spans` (free text staff type: reasons, notes) finds e-mail addresses with RFC 6531
  local parts (``stanisław.wójcik@wp.pl``), quoted local parts (``"quoted local"@example.jp``), IDN
  domains (``taro@例え.jp``) and phone numbers, after folding the text (NFKC: full-width digits and
  ``＠``; zero-width and bidi controls removed, so ``hana\u200bko@exa\u200bmple.jp`` is one address).
  Spans are offsets in the *original* text and cover a whole address.
- :func:`log_redact_identities` (log lines) also sees addresses that a web server has percent-encoded
  (``taro%40%E4%BE%8B.jp``), decoded as latin-1 (``stanisÅ\\x82aw``) or escaped with ``repr``.

Names without a pattern ("Sato Hanako") are not found here; the NLP scanner of ``governance.pii``
is the tool for those.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from urllib.parse import unquote

# Removed before matching: zero-width characters, bidi controls, soft hyphen, BOM.
_INVISIBLE = frozenset(
    "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)
_DASHES = re.compile(r"(?<=\d)[ー－ｰ‐‑‒–—―−﹣](?=\d)")

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_MARKS = "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0900-\u0dff\u0e00-\u0e7f\u3099\u309a"
# RFC 5322 atext plus any letter, digit or mark (RFC 6531 UTF-8 local parts).
_ATEXT = rf"[\w{_MARKS}!#$%&'*+/=?^`{{|}}~\-]"
_LOCAL = rf"(?:{_ATEXT}+(?:\.{_ATEXT}+)*|[\"“](?:[^\"”\\\n]|\\.){{1,64}}[\"”])"
_LABEL = rf"[\w{_MARKS}](?:[\w{_MARKS}\-]{{0,62}}[\w{_MARKS}])?"
# An ASCII top-level domain ends where ASCII letters end (``taro@example.jpです``); else a Unicode one.
_TLD = rf"(?:[A-Za-z]{{2,63}}(?![A-Za-z0-9\-])|[^\W\d_][\w{_MARKS}]{{1,62}})"
EMAIL = re.compile(rf"(?<![\w{_MARKS}.!#$%&'*+/=?^`{{|}}~\-]){_LOCAL}@(?:{_LABEL}\.)+{_TLD}")
_CJK_THEN_ASCII = re.compile(rf"[{_CJK}]+(?=[A-Za-z0-9._%+\-]+@)")

# A phone-like run: optional +, then 10–15 digits with spaces, dots, hyphens or brackets between.
PHONE = re.compile(r"(?<![\w.])\+?\(?\d(?:[\d \t\-.()]{8,18})\d(?![\w.])")
_PHONE_VALUE = re.compile(r"\+?[\d \-.()+]{10,30}")
_DATE_TIME = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}")


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    return "" if char in _INVISIBLE else unicodedata.normalize("NFKC", char)


def _fold(text: str) -> tuple[str, list[tuple[int, int]] | None]:
    """The text folded for matching, and for each folded character the original span it came from."""
    if text.isascii() or (unicodedata.is_normalized("NFKC", text) and not _INVISIBLE.intersection(text)):
        return text, None
    out: list[str] = []
    where: list[tuple[int, int]] = []
    if not any(map(unicodedata.combining, text)):
        for i, char in enumerate(text):
            folded = _fold_char(char)
            if folded:
                out.append(folded)
                where.extend([(i, i + 1)] * len(folded))
    else:  # a base character and its combining marks fold together ("o" + U+0301 -> "ó")
        i, n = 0, len(text)
        while i < n:
            j = i + 1
            while j < n and unicodedata.combining(text[j]):
                j += 1
            folded = unicodedata.normalize("NFKC", "".join(c for c in text[i:j] if c not in _INVISIBLE))
            if folded:
                out.append(folded)
                where.extend([(i, j)] * len(folded))
            i = j
    return _DASHES.sub("-", "".join(out)), where


def _phone_like(value: str) -> bool:
    digits = sum(c.isdigit() for c in value)
    return 10 <= digits <= 15 and not _DATE_TIME.match(value)


def pii_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, entity)`` of every e-mail address and phone number in ``text`` (original offsets)."""
    if not text:
        return []
    folded, where = _fold(text)
    found: list[tuple[int, int, str]] = []
    if "@" in folded:
        for match in EMAIL.finditer(folded):
            start = match.start()
            lead = _CJK_THEN_ASCII.match(folded, start)
            if lead:  # "連絡先はtaro@example.jp": the Japanese before an ASCII address is prose
                start = lead.end()
            found.append((start, match.end(), "EMAIL_ADDRESS"))
    for match in PHONE.finditer(folded):
        start, value = match.start(), match.group(0)
        if value.startswith("(") and ")" not in value:  # "(090-1234-5678)": the bracket is prose
            start += 1
        if _phone_like(value) and all(match.end() <= s or start >= e for s, e, _ in found):
            found.append((start, match.end(), "PHONE_NUMBER"))
    if where is None:
        return sorted(found)
    # invisible characters inside a match fall inside its original span
    return [(where[start][0], where[end - 1][1], entity) for start, end, entity in sorted(found)]


def pii_mask(text: str, *, template: str = "<{entity}>") -> str:
    """``text`` with every e-mail address and phone number replaced (``<EMAIL_ADDRESS>`` by default)."""
    spans = pii_spans(text)
    if not spans:
        return text
    out, last = [], 0
    for start, end, entity in spans:
        out.append(text[last:start])
        out.append(template.format(entity=entity))
        last = end
    out.append(text[last:])
    return "".join(out)


# --- log lines --------------------------------------------------------------------------------
# A log line may hold an address percent-encoded, latin-1-decoded (a web server reading UTF-8 bytes
# as latin-1: ``Å\x82``) and repr-escaped (a literal backslash-x-8-2). Anything that is not a
# delimiter around an "@" (or "%40") is taken as part of the address: in a log, over-redaction is fine.
_LOG_CHAR = r"(?:[^ \t\r\n\f\v@%<>\"'()\[\]{}\\,;:/?&=#|`]|%(?!40)[0-9A-Fa-f]{2}|\\x[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4})"
_LOG_LABEL = r"(?:[^ \t\r\n\f\v@%<>\"'()\[\]{}\\,;:/?&=#|`.]|%(?!2[Ee]|40)[0-9A-Fa-f]{2}|\\x[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4})+"
_LOG_EMAIL = re.compile(
    rf"(?<![^ \t\r\n\f\v@%<>\"'()\[\]{{}}\\,;:/?&=#|`]){_LOG_CHAR}+(?:@|%40|%2540){_LOG_LABEL}(?:(?:\.|%2[Ee]){_LOG_LABEL})+"
)
_LOG_PHONE = re.compile(r"(?<![\w.:%-])(?:\+|%2[Bb])?\(?\d(?:[\d \-.()]|%20|%2[Bb]){8,40}\d(?![\w.:])")


def phone_like(value: str) -> bool:
    """Whether a whole value (a query parameter, a path segment) looks like a phone number."""
    value = unicodedata.normalize("NFKC", unquote(value)).strip()
    return bool(_PHONE_VALUE.fullmatch(value)) and _phone_like(value)


def log_redact_identities(text: str, replacement: str) -> str:
    """A log line with e-mail addresses (any encoding) and phone-number runs replaced."""
    if "@" in text or "%40" in text:
        text = _LOG_EMAIL.sub(replacement, text)
    if not text.isascii() and ("@" in text or "＠" in text or any(c in _INVISIBLE for c in text)):
        text = pii_mask(text, template=replacement)  # zero-width split or full-width addresses
    if any(c.isdigit() for c in text):
        text = _LOG_PHONE.sub(lambda m: replacement if _phone_like(_unpct(m.group(0))) else m.group(0), text)
        if not text.isascii():
            text = pii_mask(text, template=replacement)  # full-width digits
    return text


def _unpct(value: str) -> str:
    return value.replace("%20", " ").replace("%2B", "+").replace("%2b", "+")
