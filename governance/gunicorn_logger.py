"""gunicorn's logs without identities: ``--logger-class governance.gunicorn_logger.RedactingLogger``.

``manage.py run_demo`` starts gunicorn with it.

- Access log: every atom that can carry request data (request line ``%(r)s``, path ``%(U)s``,
  query ``%(q)s``, referer ``%(f)s``, user agent and any ``{…}i`` / ``{…}e`` / ``{…}o`` atom) is
  passed through :func:`governance.logredact.redact_text` (identity parameters, e-mail addresses in
  any encoding, phone numbers); the Basic-auth user ``%(u)s`` is always ``-``; credentials in
  headers (``Authorization``, ``Cookie``) never appear, whatever ``--access-logformat`` asks for.
- Error log: gunicorn's own messages quote what a client sent ("Invalid HTTP request line: '…'",
  "Invalid HTTP Header: '…'"); they go through :class:`governance.logredact.RedactFilter`, the
  filter Django's console handler uses.
"""

from __future__ import annotations

import os

from gunicorn.glogging import Logger

from governance.logredact import REDACTED, RedactFilter, redact_query, redact_text

# Atoms that are the server's own facts (address, time, status, sizes, durations, pid).
_PLAIN_ATOMS = frozenset({"h", "l", "t", "s", "b", "B", "T", "D", "L", "p", "m", "H"})
_QUERY_ATOMS = ("q", "{query_string}e")
_SECRET_ATOMS = ("{authorization}i", "{cookie}i", "{http_authorization}e", "{http_cookie}e",
                 "{set-cookie}o", "{proxy-authorization}i", "{http_proxy_authorization}e")
_USER_ATOMS = ("u", "{remote_user}e")


class RedactingLogger(Logger):
    def __init__(self, cfg):
        super().__init__(cfg)
        # a logger's filters survive gunicorn's setup() and reopen_files(), which replace handlers
        self.error_log.addFilter(RedactFilter())

    def setup(self, cfg):
        super().setup(cfg)
        if os.environ.get("LOG_FORMAT", "text") == "json":  # the image's format (docs/operations.md)
            from governance.observability.logformat import (
                GunicornAccessJsonFormatter,
                JsonFormatter,
            )

            for handler in self.error_log.handlers:
                handler.setFormatter(JsonFormatter())
            for handler in self.access_log.handlers:
                handler.setFormatter(GunicornAccessJsonFormatter())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():
            if name in _PLAIN_ATOMS or not isinstance(value, str) or not value:
                continue
            if name in _SECRET_ATOMS:
                atoms[name] = REDACTED
            elif name in _USER_ATOMS:
                atoms[name] = "-"
            elif name in _QUERY_ATOMS:
                atoms[name] = redact_text(redact_query(value))
            else:
                atoms[name] = redact_text(value)
        return atoms
