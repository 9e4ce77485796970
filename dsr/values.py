"""How store values become JSON: the one encoding of access results, packages and comparisons.

Stores hand back Python values (``datetime``, ``Decimal``, ``UUID``, ``bytes`` …). They are written
to JSON as ISO 8601 text (dates and times, with the offset when the store gave one) and as JSON
numbers (``Decimal``), so a package says ``"total": 12.5`` and ``"placed_at": "2022-03-11T00:00:00"``
rather than ``"12.50"`` and ``"2022-03-11 00:00:00"``. Use :func:`json_default` wherever rows are
serialised (``json.dumps(row, default=json_default)``) so that values read back from a result file
compare equal to values read again from the store.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from decimal import Decimal


def decimal_number(value: Decimal) -> int | float | str:
    """An int or float equal to ``value``; its text when no float holds it exactly (or not finite)."""
    if not value.is_finite():
        return str(value)
    if value == value.to_integral_value():
        return int(value)
    number = float(value)
    return number if Decimal(repr(number)) == value else str(value)


def json_default(value):
    """``default=`` for :func:`json.dumps`: ISO 8601 for dates and times, numbers for decimals."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return decimal_number(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(data).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)
