"""Brevo API v3 emulator (the subset the ``brevo`` catalogue template uses).

From Brevo's API reference: the ``api-key`` header; ``GET /v3/contacts/{identifier}`` (the
URL-encoded e-mail — compared ignoring case; Brevo keeps addresses in lower case — or the contact
id; ``attributes`` hold FIRSTNAME, LASTNAME, SMS …); ``DELETE /v3/contacts/{identifier}`` (204);
``GET /v3/smtp/emails?email=…&limit=…&offset=…`` (``{"count", "transactionalEmails": [{email,
subject, messageId, uuid, date, templateId, from, tags}]}``); ``DELETE /v3/smtp/log/{identifier}``
(a message id, or an address: every log entry of it; 204); ``GET /v3/account``; errors
``{"code", "message"}`` (404 ``document_not_found``); ``x-sib-ratelimit-limit`` / ``-remaining`` /
``-reset`` (seconds) on every answer, 429 ``too_many_requests`` when none remain.
"""

from __future__ import annotations

from urllib.parse import unquote

from tests.emulators.base import Emulator, Request, Response

PREFIX = "/v3"


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"code": code, "message": message})


class BrevoEmulator(Emulator):
    name = "brevo"

    def __init__(self, *, api_key: str = "xkeysib-emulator"):
        super().__init__()
        self.api_key = api_key
        self.contacts: dict[int, dict] = {}
        self.emails: list[dict] = []
        self.deleted_contacts: set[int] = set()
        self.deleted_logs: set[str] = set()
        self.route("GET", PREFIX + r"/account", self.account)
        self.route("GET", PREFIX + r"/contacts/(?P<identifier>[^/]+)", self.contact_get)
        self.route("DELETE", PREFIX + r"/contacts/(?P<identifier>[^/]+)", self.contact_delete)
        self.route("GET", PREFIX + r"/smtp/emails", self.emails_list)
        self.route("DELETE", PREFIX + r"/smtp/log/(?P<identifier>[^/]+)", self.log_delete)

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        if response.status != 429:
            response.headers.update({"x-sib-ratelimit-limit": "10", "x-sib-ratelimit-remaining": "9",
                                     "x-sib-ratelimit-reset": "1"})
        return response

    def authorized(self, request: Request) -> bool:
        return request.headers.get("api-key") == self.api_key

    def unauthorized(self, request: Request) -> Response:
        return _error(401, "unauthorized", "Key not found")

    def not_found(self, request: Request) -> Response:
        return _error(404, "document_not_found", "Document not found")

    def rate_limited_response(self, request: Request) -> Response:
        response = _error(429, "too_many_requests", "The expected rate limit is exceeded.")
        response.headers.update({"x-sib-ratelimit-limit": "10", "x-sib-ratelimit-remaining": "0",
                                 "x-sib-ratelimit-reset": self.retry_after})
        return response

    # --- data ------------------------------------------------------------------------------
    def add_contact(self, email: str, **attributes) -> dict:
        cid = len(self.contacts) + 101
        contact = {"id": cid, "email": email.lower(), "emailBlacklisted": False, "smsBlacklisted": False,
                   "createdAt": "2024-01-01T00:00:00.000+02:00", "modifiedAt": "2024-01-02T00:00:00.000+02:00",
                   "listIds": [2], "attributes": attributes, "statistics": {}}
        self.contacts[cid] = contact
        return contact

    def add_email(self, email: str, subject: str) -> dict:
        n = len(self.emails) + 1
        entry = {"email": email, "subject": subject, "templateId": 7, "messageId": f"<20240101{n:06d}.1@smtp-relay.mailin.fr>",
                 "uuid": f"5c6c1ff2-0000-4000-8000-{n:012d}", "date": "2024-01-01T10:00:00.000+01:00",
                 "from": "shop@example.eu", "tags": ["order"]}
        self.emails.append(entry)
        return entry

    def _contact(self, identifier: str) -> dict | None:
        identifier = unquote(identifier)
        if identifier.isdigit():
            return self.contacts.get(int(identifier))
        return next((c for c in self.contacts.values() if c["email"] == identifier.lower()), None)

    # --- endpoints -------------------------------------------------------------------------
    def account(self, request: Request) -> Response:
        return Response(200, {"email": "dpo@example.eu", "companyName": "Example SAS", "plan": []})

    def contact_get(self, request: Request) -> Response:
        contact = self._contact(request.match["identifier"])
        return Response(200, contact) if contact else _error(404, "document_not_found", "Contact does not exist")

    def contact_delete(self, request: Request) -> Response:
        contact = self._contact(request.match["identifier"])
        if contact is None:
            return _error(404, "document_not_found", "Contact does not exist")
        del self.contacts[contact["id"]]
        self.deleted_contacts.add(contact["id"])
        return Response(204)

    def emails_list(self, request: Request) -> Response:
        wanted = (request.query.get("email") or "").lower()
        if not wanted and not request.query.get("messageId"):
            return _error(400, "missing_parameter", "email, templateId or messageId is required")
        found = [e for e in self.emails if e["email"].lower() == wanted]
        if request.query.get("sort", "desc") == "desc":
            found = list(reversed(found))
        limit = self.cap(min(int(request.query.get("limit", 500)), 1000))
        offset = int(request.query.get("offset", 0))
        return Response(200, {"count": len(found), "transactionalEmails": found[offset:offset + limit]})

    def log_delete(self, request: Request) -> Response:
        identifier = unquote(request.match["identifier"])
        gone = [e for e in self.emails if identifier in (e["messageId"], e["email"].lower())]
        if not gone:
            return _error(404, "document_not_found", "Transactional log not found")
        self.emails = [e for e in self.emails if e not in gone]
        self.deleted_logs.update(e["uuid"] for e in gone)
        return Response(204)
