"""gunicorn's access log without identities: ``--logger-class governance.gunicorn_logger.RedactingLogger``.

``manage.py run_demo`` starts gunicorn with it. Every atom that can carry a URL (request line
``%(r)s``, query ``%(q)s``, referer ``%(f)s`` and the same values as ``{…}i`` / ``{…}e`` atoms) is
passed through :func:`governance.logredact.redact_text`; credentials in headers (``Authorization``,
``Cookie``) never appear, whatever ``--access-logformat`` asks for.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from governance.logredact import REDACTED, redact_query, redact_text

_URL_ATOMS = ("r", "f", "{referer}i", "{raw_uri}e", "{request_uri}e", "{http_referer}e", "{path_info}e")
_QUERY_ATOMS = ("q", "{query_string}e")
_SECRET_ATOMS = ("{authorization}i", "{cookie}i", "{http_authorization}e", "{http_cookie}e",
                 "{set-cookie}o")


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in _URL_ATOMS:
            if isinstance(atoms.get(name), str):
                atoms[name] = redact_text(atoms[name])
        for name in _QUERY_ATOMS:
            if isinstance(atoms.get(name), str):
                atoms[name] = redact_query(atoms[name])
        for name in _SECRET_ATOMS:
            if atoms.get(name):
                atoms[name] = REDACTED
        return atoms
