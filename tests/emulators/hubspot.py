"""HubSpot CRM API emulator (the subset the ``hubspot`` catalogue template uses).

From HubSpot's API reference: OAuth 2.0 — ``POST /oauth/v1/token`` (form body, ``grant_type=
refresh_token`` with ``client_id``, ``client_secret``, ``refresh_token``) answers a Bearer access
token that expires (``expires_in``; an expired token answers 401 ``EXPIRED_AUTHENTICATION``);
``POST /crm/v3/objects/contacts/search`` (``filterGroups`` / ``filters`` with ``EQ``,
``properties``, ``limit``, ``after``; ``paging.next.after``); ``GET
/crm/v3/objects/contacts/{id}``; ``POST /crm/v3/objects/contacts/gdpr-delete`` (``objectId``;
204, permanent); errors ``{"status": "error", "message", "category"}``; 429 ``RATE_LIMIT``.
"""

from __future__ import annotations

import secrets

from tests.emulators.base import Emulator, Request, Response

PROPERTIES = ("email", "firstname", "lastname", "phone", "mobilephone", "address", "city", "zip", "country",
              "company", "jobtitle", "date_of_birth")


def _error(status: int, category: str, message: str) -> Response:
    return Response(status, {"status": "error", "message": message, "category": category,
                             "correlationId": "00000000-0000-0000-0000-000000000000"})


class HubSpotEmulator(Emulator):
    name = "hubspot"
    public_paths = ("/oauth/v1/token",)

    def __init__(self, *, client_id: str = "hs-client", client_secret: str = "hs-secret",
                 refresh_token: str = "hs-refresh-1", expires_in: int = 1800):
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.expires_in = expires_in
        self.access_tokens: dict[str, bool] = {}  # token -> still valid
        self.token_uses: dict[str, int] = {}
        #: a token expires after this many requests (stands in for ``expires_in`` in tests)
        self.max_token_uses: int | None = None
        self.tokens_issued = 0
        self.expired_rejections = 0
        self.contacts: dict[str, dict] = {}
        self.gdpr_deleted: set[str] = set()
        self.route("POST", r"/oauth/v1/token", self.token)
        self.route("GET", r"/crm/v3/objects/contacts", self.contacts_list)
        self.route("POST", r"/crm/v3/objects/contacts/search", self.contacts_search)
        self.route("POST", r"/crm/v3/objects/contacts/gdpr-delete", self.contact_gdpr_delete)
        self.route("GET", r"/crm/v3/objects/contacts/(?P<id>\d+)", self.contact_get)

    def authorized(self, request: Request) -> bool:
        token = request.bearer()
        if token in self.access_tokens and self.max_token_uses is not None:
            self.token_uses[token] = self.token_uses.get(token, 0) + 1
            if self.token_uses[token] > self.max_token_uses:
                self.access_tokens[token] = False
        if token in self.access_tokens and not self.access_tokens[token]:
            self.expired_rejections += 1
            request.headers["x-expired"] = "1"
        return bool(token and self.access_tokens.get(token))

    def unauthorized(self, request: Request) -> Response:
        if request.headers.get("x-expired"):
            return _error(401, "EXPIRED_AUTHENTICATION", "The OAuth token used to make this call expired 1 second(s) ago.")
        return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")

    def not_found(self, request: Request) -> Response:
        return _error(404, "OBJECT_NOT_FOUND", "resource not found")

    def rate_limited_response(self, request: Request) -> Response:
        response = Response(429, {"status": "error", "message": "You have reached your secondly limit.",
                                  "errorType": "RATE_LIMIT", "policyName": "SECONDLY"})
        response.headers.update({"X-HubSpot-RateLimit-Secondly": "10", "X-HubSpot-RateLimit-Secondly-Remaining": "0"})
        return response

    def expire_tokens(self) -> None:
        """Every access token issued so far is now expired (as after ``expires_in``)."""
        for token in self.access_tokens:
            self.access_tokens[token] = False

    # --- data ------------------------------------------------------------------------------
    def add_contact(self, **properties) -> dict:
        cid = str(5000 + len(self.contacts) + 1)
        contact = {"id": cid, "properties": {p: None for p in PROPERTIES} | properties,
                   "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-02T00:00:00.000Z", "archived": False}
        self.contacts[cid] = contact
        return contact

    def _view(self, contact: dict, wanted: list[str]) -> dict:
        props = {p: contact["properties"].get(p) for p in (wanted or ["email", "firstname", "lastname"])}
        props.update(hs_object_id=contact["id"], createdate=contact["createdAt"], lastmodifieddate=contact["updatedAt"])
        return {**contact, "properties": props}

    # --- endpoints -------------------------------------------------------------------------
    def token(self, request: Request) -> Response:
        form = request.form()
        if (form.get("grant_type") != "refresh_token" or form.get("client_id") != self.client_id
                or form.get("client_secret") != self.client_secret or form.get("refresh_token") != self.refresh_token):
            return Response(400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"})
        token = secrets.token_hex(16)
        self.access_tokens[token] = True
        self.tokens_issued += 1
        return Response(200, {"token_type": "bearer", "access_token": token, "refresh_token": self.refresh_token,
                              "expires_in": self.expires_in})

    def contacts_list(self, request: Request) -> Response:
        rows = list(self.contacts.values())[: self.cap(request.query.get("limit", 10))]
        return Response(200, {"results": [self._view(c, []) for c in rows]})

    def contacts_search(self, request: Request) -> Response:
        body = request.json() or {}
        groups = body.get("filterGroups") or []
        if not groups:
            return _error(400, "VALIDATION_ERROR", "filterGroups is required")

        def matches(contact: dict) -> bool:
            for group in groups:  # groups are ORed, filters within a group ANDed
                if all(f.get("operator") == "EQ" and str(contact["properties"].get(f["propertyName"]) or "").lower()
                       == str(f.get("value", "")).lower() for f in group.get("filters", [])):
                    return True
            return False

        found = [c for c in self.contacts.values() if matches(c)]
        limit = self.cap(body.get("limit", 10))
        start = int(body.get("after") or 0)
        rows = found[start:start + limit]
        result = {"total": len(found), "results": [self._view(c, body.get("properties") or []) for c in rows]}
        if start + limit < len(found):
            result["paging"] = {"next": {"after": str(start + limit)}}
        return Response(200, result)

    def contact_get(self, request: Request) -> Response:
        contact = self.contacts.get(request.match["id"])
        if contact is None:
            return self.not_found(request)
        wanted = [p for p in request.query.get("properties", "").split(",") if p]
        return Response(200, self._view(contact, wanted))

    def contact_gdpr_delete(self, request: Request) -> Response:
        body = request.json() or {}
        cid = str(body.get("objectId") or "")
        if body.get("idProperty") == "email":
            cid = next((c["id"] for c in self.contacts.values()
                        if (c["properties"].get("email") or "").lower() == cid.lower()), "")
        if cid not in self.contacts:
            return self.not_found(request)
        del self.contacts[cid]
        self.gdpr_deleted.add(cid)
        return Response(204)
