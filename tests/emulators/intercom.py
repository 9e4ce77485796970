"""Intercom REST API emulator (the subset the ``intercom`` catalogue template uses).

From Intercom's API reference (version 2.11): ``Authorization: Bearer`` access token and the
``Intercom-Version`` header; ``POST /contacts/search`` with ``{"query": {field, operator, value},
"pagination": {per_page, starting_after}}`` (``=`` on e-mail ignores case; ``data``, ``total_count``
and ``pages.next.starting_after`` — the cursor goes back in the body); ``GET /contacts/{id}``;
``DELETE /contacts/{id}`` (``{"id", "object": "contact", "deleted": true}``, the contact is gone);
``GET /me``; errors ``{"type": "error.list", "errors": [{code, message}]}``; every answer carries
``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (a Unix time); 429 ``rate_limit_exceeded``
without ``Retry-After``.
"""

from __future__ import annotations

import base64
import time

from tests.emulators.base import Emulator, Request, Response


def _errors(status: int, code: str, message: str) -> Response:
    return Response(status, {"type": "error.list", "request_id": "000000000000000000000",
                             "errors": [{"code": code, "message": message}]})


class IntercomEmulator(Emulator):
    name = "intercom"

    def __init__(self, *, access_token: str = "ic-token", version: str = "2.11"):
        super().__init__()
        self.access_token = access_token
        self.version = version
        self.contacts: dict[str, dict] = {}
        self.deleted: set[str] = set()
        #: the X-RateLimit-Reset (Unix time) of each 429 sent
        self.resets: list[int] = []
        self.route("GET", r"/me", self.me)
        self.route("POST", r"/contacts/search", self.contacts_search)
        self.route("GET", r"/contacts/(?P<id>\w+)", self.contact_get)
        self.route("DELETE", r"/contacts/(?P<id>\w+)", self.contact_delete)

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        if response.status != 429:
            response.headers.update({"X-RateLimit-Limit": "1666", "X-RateLimit-Remaining": "1600",
                                     "X-RateLimit-Reset": str(int(time.time()) + 10)})
        return response

    def authorized(self, request: Request) -> bool:
        return request.bearer() == self.access_token and request.headers.get("intercom-version") == self.version

    def unauthorized(self, request: Request) -> Response:
        return _errors(401, "unauthorized", "Access Token Invalid")

    def not_found(self, request: Request) -> Response:
        return _errors(404, "not_found", "User Not Found")

    def rate_limited_response(self, request: Request) -> Response:
        reset = int(time.time()) + 2
        self.resets.append(reset)
        response = _errors(429, "rate_limit_exceeded", "Exceeded rate limit of 1666 in 10_seconds")
        response.headers.update({"X-RateLimit-Limit": "1666", "X-RateLimit-Remaining": "0",
                                 "X-RateLimit-Reset": str(reset)})
        return response

    # --- data ------------------------------------------------------------------------------
    def add_contact(self, **fields) -> dict:
        cid = f"65a{len(self.contacts) + 1:021x}"
        contact = {"type": "contact", "id": cid, "workspace_id": "abc123", "external_id": None, "role": "user",
                   "email": None, "phone": None, "name": None, "avatar": None, "owner_id": None,
                   "location": {"type": "location", "country": None, "region": None, "city": None},
                   "custom_attributes": {}, "browser": None, "os": None, "signed_up_at": None,
                   "last_seen_at": None, "unsubscribed_from_emails": False, "created_at": 1704067200,
                   "updated_at": 1704153600, **fields}
        self.contacts[cid] = contact
        return contact

    # --- endpoints -------------------------------------------------------------------------
    def me(self, request: Request) -> Response:
        return Response(200, {"type": "admin", "id": "1", "email": "dpo@example.com", "app": {"id_code": "abc123"}})

    def contacts_search(self, request: Request) -> Response:
        body = request.json() or {}
        query = body.get("query") or {}
        if query.get("field") not in {"email", "phone", "external_id", "role"} or query.get("operator") != "=":
            return _errors(400, "parameter_invalid", "Invalid query: field and = operator required")
        value = str(query.get("value") or "").lower()
        found = [c for c in self.contacts.values() if str(c.get(query["field"]) or "").lower() == value]
        pagination = body.get("pagination") or {}
        per_page = self.cap(min(int(pagination.get("per_page", 50)), 150))
        cursor = pagination.get("starting_after")
        start = int(base64.b64decode(cursor).decode()) if cursor else 0
        rows = found[start:start + per_page]
        pages = {"type": "pages", "page": start // per_page + 1, "per_page": per_page,
                 "total_pages": max(1, -(-len(found) // per_page))}
        if start + per_page < len(found):
            pages["next"] = {"page": pages["page"] + 1,
                             "starting_after": base64.b64encode(str(start + per_page).encode()).decode()}
        return Response(200, {"type": "list", "data": rows, "total_count": len(found), "pages": pages})

    def contact_get(self, request: Request) -> Response:
        contact = self.contacts.get(request.match["id"])
        return Response(200, contact) if contact else self.not_found(request)

    def contact_delete(self, request: Request) -> Response:
        contact = self.contacts.pop(request.match["id"], None)
        if contact is None:
            return self.not_found(request)
        self.deleted.add(contact["id"])
        return Response(200, {"id": contact["id"], "external_id": contact["external_id"], "type": "contact",
                              "deleted": True})
