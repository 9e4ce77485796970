"""Stripe API emulator (the subset the ``stripe`` catalogue template uses).

From Stripe's API reference: secret key as Bearer token (or HTTP Basic user); ``GET
/v1/customers/search`` with the search query language (``email:'…'``, ``phone:'…'``; exact
match, case-insensitive; ``page`` / ``next_page`` / ``has_more``); ``GET /v1/customers/{id}``
(a deleted customer answers ``{"id": …, "deleted": true}``); ``DELETE /v1/customers/{id}``
(permanent); ``GET /v1/charges?customer=…`` (list: ``starting_after`` the last id, ``has_more``);
errors ``{"error": {"type", "code", "message"}}`` (404 ``resource_missing``); 429 ``rate_limit``
without ``Retry-After`` (Stripe sends ``Stripe-Should-Retry``).
"""

from __future__ import annotations

import re

from tests.emulators.base import Emulator, Request, Response

QUERY = re.compile(r"^(email|phone):'((?:[^'\\]|\\.)*)'$")


def _error(status: int, code: str, message: str, kind: str = "invalid_request_error") -> Response:
    return Response(status, {"error": {"type": kind, "code": code, "message": message}})


class StripeEmulator(Emulator):
    name = "stripe"

    def __init__(self, *, api_key: str = "sk_test_emulator"):
        super().__init__()
        self.api_key = api_key
        self.customers: dict[str, dict] = {}
        self.deleted: set[str] = set()
        self.charges: list[dict] = []
        self.route("GET", r"/v1/customers/search", self.customers_search)
        self.route("GET", r"/v1/customers", self.customers_list)
        self.route("GET", r"/v1/customers/(?P<id>[^/]+)", self.customer_get)
        self.route("DELETE", r"/v1/customers/(?P<id>[^/]+)", self.customer_delete)
        self.route("GET", r"/v1/charges", self.charges_list)

    def authorized(self, request: Request) -> bool:
        basic = request.basic_auth()
        return request.bearer() == self.api_key or (basic is not None and basic[0] == self.api_key)

    def unauthorized(self, request: Request) -> Response:
        return _error(401, "api_key_invalid", "Invalid API Key provided.")

    def rate_limited_response(self, request: Request) -> Response:
        response = _error(429, "rate_limit", "Too many requests hit the API too quickly.")
        response.headers["Stripe-Should-Retry"] = "true"
        return response

    def not_found(self, request: Request) -> Response:
        return _error(404, "resource_missing", f"Unrecognized request URL (GET: {request.path}).")

    # --- data ------------------------------------------------------------------------------
    def add_customer(self, **fields) -> dict:
        customer = {"id": f"cus_{len(self.customers) + 1:05d}", "object": "customer", "email": None,
                    "phone": None, "name": None, "address": None, "shipping": None, "description": None,
                    "created": 1700000000 + len(self.customers), "metadata": {}, "preferred_locales": [],
                    **fields}
        self.customers[customer["id"]] = customer
        return customer

    def add_charge(self, customer_id: str, amount: int, **fields) -> dict:
        charge = {"id": f"ch_{len(self.charges) + 1:05d}", "object": "charge", "customer": customer_id,
                  "amount": amount, "currency": "jpy", "created": 1700001000 + len(self.charges),
                  "description": None, "receipt_email": None, "billing_details": None, **fields}
        self.charges.append(charge)
        return charge

    def live(self) -> list[dict]:
        return [c for c in self.customers.values() if c["id"] not in self.deleted]

    # --- endpoints -------------------------------------------------------------------------
    def customers_search(self, request: Request) -> Response:
        match = QUERY.match(request.query.get("query", ""))
        if not match:
            return _error(400, "parameter_invalid", "Invalid search query.")
        field_name, value = match.group(1), re.sub(r"\\(.)", r"\1", match.group(2))
        found = [c for c in self.live() if (c.get(field_name) or "").lower() == value.lower()]
        limit = self.cap(request.query.get("limit", 10))
        start = int(request.query.get("page") or 0)
        page = found[start:start + limit]
        more = start + limit < len(found)
        return Response(200, {"object": "search_result", "url": "/v1/customers/search", "data": page,
                              "has_more": more, "next_page": str(start + limit) if more else None})

    def customers_list(self, request: Request) -> Response:
        # The list's email filter is case-sensitive (Stripe's reference says so).
        found = [c for c in self.live() if "email" not in request.query or c.get("email") == request.query["email"]]
        return self._list(request, found, "/v1/customers")

    def customer_get(self, request: Request) -> Response:
        cid = request.match["id"]
        if cid in self.deleted:
            return Response(200, {"id": cid, "object": "customer", "deleted": True})
        if cid not in self.customers:
            return _error(404, "resource_missing", f"No such customer: '{cid}'")
        return Response(200, self.customers[cid])

    def customer_delete(self, request: Request) -> Response:
        cid = request.match["id"]
        if cid not in self.customers or cid in self.deleted:
            return _error(404, "resource_missing", f"No such customer: '{cid}'")
        self.deleted.add(cid)
        return Response(200, {"id": cid, "object": "customer", "deleted": True})

    def charges_list(self, request: Request) -> Response:
        found = [c for c in self.charges if "customer" not in request.query or c["customer"] == request.query["customer"]]
        return self._list(request, found, "/v1/charges")

    def _list(self, request: Request, found: list[dict], url: str) -> Response:
        limit = self.cap(request.query.get("limit", 10))
        after = request.query.get("starting_after")
        if after:
            ids = [c["id"] for c in found]
            if after not in ids:
                return _error(400, "resource_missing", f"No such object: '{after}'")
            found = found[ids.index(after) + 1:]
        return Response(200, {"object": "list", "url": url, "data": found[:limit], "has_more": len(found) > limit})
