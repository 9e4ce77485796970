"""Keep personal data out of log lines: identity values in URLs, e-mail addresses, phone numbers.

Identities may still arrive in query strings (the ``GET`` forms of ``/api/v1/consent/check``,
``/api/v1/consent/state`` and ``/api/v1/profiles/?email=`` are kept for compatibility; the
``POST`` forms carry them in the body). Whatever logs a URL — gunicorn's access log
(:mod:`governance.gunicorn_logger`), Django's ``django.server`` / ``django.request`` loggers (the
:class:`RedactFilter` on the console handler) — passes it through :func:`redact_text` first:
values of identity parameters, and any value or text that looks like an e-mail address (also
internationalised, percent-encoded or mis-decoded as latin-1: :mod:`governance.textpii`) or a phone
number, become ``[redacted]``. The parameter names stay, so a log still tells which form was used.
gunicorn's error log ("Invalid HTTP request line: '…'") goes through the same :class:`RedactFilter`.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from governance.textpii import log_redact_identities, phone_like

REDACTED = "[redacted]"

# Parameters whose values identify a person, or are credentials (admin search ``q``, receipt
# token ``t``, one-time codes).
IDENTITY_PARAMS = frozenset({
    "email", "phone", "identity", "identity_value", "identity_index", "browser_id", "customer_id",
    "value", "name", "full_name", "q", "t", "token", "code", "otp", "key", "secret", "password",
    "tel", "mobile", "fax", "msisdn", "user", "username", "login",
})

_QUERY = re.compile(r"\?([^\s\"'<>]*)")


def _sensitive(name: str, value: str) -> bool:
    plain_name = unquote_plus(name).strip().lower()
    if plain_name in IDENTITY_PARAMS or plain_name.endswith(("email", "phone", "_identity", "_tel", "mobile")):
        return True
    plain_value = unquote_plus(unquote_plus(value))  # also a URL that was encoded twice (a "next=")
    return "@" in plain_value or "＠" in plain_value or phone_like(value)


def redact_query(query: str) -> str:
    """A raw query string with identity values replaced (names, order and other values kept)."""
    if not query:
        return query
    parts = []
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and _sensitive(name, value):
            value = REDACTED
        parts.append(name + sep + value)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """A URL (or request target) with its query string redacted."""
    if not url or "?" not in url:
        return url
    path, _sep, query = url.partition("?")
    query, hash_sign, fragment = query.partition("#")
    return path + "?" + redact_query(query) + (hash_sign + REDACTED if fragment else "")


def redact_text(text: str) -> str:
    """Free log text: every query string in it redacted, then any remaining e-mail address or phone."""
    if not text:
        return text
    if "?" in text:
        text = _QUERY.sub(lambda m: "?" + redact_query(m.group(1)), text)
    return log_redact_identities(text, REDACTED)


class RedactFilter(logging.Filter):
    """A handler filter: the formatted message with identity values removed (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the logger's problem, not ours
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:  # a traceback's messages may quote the input
            record.exc_text = redact_text(_FORMATTER.formatException(record.exc_info))
        return True


_FORMATTER = logging.Formatter()
