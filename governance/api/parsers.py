"""The one JSON parser of the API: a body that is not JSON we accept is a 400, never a 500.

Python's ``json`` raises ``RecursionError`` (not ``ValueError``) on deeply nested input such as
``"[" * 1000 + "]" * 1000`` — 2 KB that any anonymous caller can send — and DRF's own parser lets
that through as a 500. :func:`json_loads` turns it, and any nesting deeper than
:data:`MAX_JSON_DEPTH`, into :class:`JSONTooDeep` (a ``ValueError``), so code further on never has
to walk absurdly deep data either. :class:`JSONParser` (``DEFAULT_PARSER_CLASSES``) answers it with
the 400 problem ``code: "parse_error"``; the consent check's fast path uses :func:`json_loads` too.

A ``\\ud800`` escape without its pair decodes to a lone surrogate: no UTF-8 text, no database and no
response can hold it. :func:`json_loads` refuses it anywhere in the body (:class:`LoneSurrogate`),
and the parser answers with the 400 problem ``code: "surrogate_characters_not_allowed"``, the code
DRF's text fields use for the same thing.

A NUL (``\\u0000``) means nothing in any value or key the API takes, and PostgreSQL cannot store it
in text or ``jsonb``: :func:`json_loads` refuses it anywhere in the body (:class:`NullCharacter`,
400 ``null_characters_not_allowed``, DRF's code for NUL in a text field) — free-form objects
(``details``, ``extra``) included.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

from django.conf import settings
from django.core.validators import ProhibitNullCharactersValidator
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils.json import strict_constant
from rest_framework.validators import ProhibitSurrogateCharactersValidator

#: Deepest nesting of objects and arrays a request body may have (no API body comes near it).
MAX_JSON_DEPTH = 64


# Only bodies with a surrogate escape can hold a lone surrogate: the others skip the walk.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A raw NUL cannot be inside a JSON string (control characters must be escaped): only the escape.
_NUL_ESCAPE = "\\u0000"


class JSONTooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(f"nested deeper than {MAX_JSON_DEPTH} levels")


class LoneSurrogate(ValueError):
    code = ProhibitSurrogateCharactersValidator.code

    def __init__(self, char: str) -> None:
        super().__init__(char)
        self.message = ProhibitSurrogateCharactersValidator.message.format(code_point=ord(char))


class NullCharacter(ValueError):
    code = ProhibitNullCharactersValidator.code

    def __init__(self) -> None:
        super().__init__(str(ProhibitNullCharactersValidator.message))
        self.message = str(ProhibitNullCharactersValidator.message)


def json_loads(data: bytes | str) -> Any:
    """``json.loads`` for request bodies: ``NaN``/``Infinity`` refused, nesting limited.

    Raises ``ValueError`` (``JSONDecodeError``, ``UnicodeDecodeError``, :class:`JSONTooDeep`,
    :class:`LoneSurrogate` or :class:`NullCharacter`).
    """
    try:
        value = json.loads(data, parse_constant=strict_constant)
    except RecursionError:
        raise JSONTooDeep() from None
    # Only a body with that many brackets can be that deep: ordinary bodies skip the walk.
    opening = (b"[", b"{") if isinstance(data, bytes | bytearray) else ("[", "{")
    if data.count(opening[0]) + data.count(opening[1]) > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise JSONTooDeep()
    escape = _SURROGATE_ESCAPE_BYTES if isinstance(data, bytes | bytearray) else _SURROGATE_ESCAPE
    if escape.search(data):
        _refuse_lone_surrogates(value)
    nul = _NUL_ESCAPE.encode() if isinstance(data, bytes | bytearray) else _NUL_ESCAPE
    if nul in data and _holds_nul(value):
        raise NullCharacter()
    return value


def _holds_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _refuse_lone_surrogates(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = LONE_SURROGATE.search(item)
            if found:
                raise LoneSurrogate(found.group())
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser on :func:`json_loads`: too deep is a ``parse_error`` like any bad JSON."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_loads(codecs.getreader(encoding)(stream).read())
        except (LoneSurrogate, NullCharacter) as exc:
            raise ParseError(exc.message, code=exc.code) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
