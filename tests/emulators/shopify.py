"""Shopify Admin REST API emulator (the subset the ``shopify`` catalogue template uses).

From Shopify's Admin REST reference: ``X-Shopify-Access-Token`` header; versioned paths
(``/admin/api/2024-07/…``); ``GET customers/search.json?query=email:…`` and ``GET
orders.json?customer_id=…&status=any`` paged by cursor in the ``Link`` header (``page_info``; the
next URL carries only ``page_info`` and ``limit``); ``GET``/``PUT customers/{id}.json`` (body
``{"customer": {…}}``); ``DELETE customers/{id}.json`` refused with 422 while the customer has
orders; errors ``{"errors": …}``; ``X-Shopify-Shop-Api-Call-Limit`` and 429 with ``Retry-After``
(seconds, written like ``2.0``).
"""

from __future__ import annotations

import base64
import json

from tests.emulators.base import Emulator, Request, Response

VERSION = "2024-07"
PREFIX = f"/admin/api/{VERSION}"


class ShopifyEmulator(Emulator):
    name = "shopify"

    def __init__(self, *, access_token: str = "shpat_emulator"):
        super().__init__()
        self.access_token = access_token
        self.retry_after = "1.0"
        self.customers: dict[int, dict] = {}
        self.orders: list[dict] = []
        self.route("GET", PREFIX + r"/shop\.json", self.shop)
        self.route("GET", PREFIX + r"/customers/search\.json", self.customers_search)
        self.route("GET", PREFIX + r"/customers/(?P<id>\d+)\.json", self.customer_get)
        self.route("PUT", PREFIX + r"/customers/(?P<id>\d+)\.json", self.customer_update)
        self.route("DELETE", PREFIX + r"/customers/(?P<id>\d+)\.json", self.customer_delete)
        self.route("GET", PREFIX + r"/orders\.json", self.orders_list)

    def authorized(self, request: Request) -> bool:
        return request.headers.get("x-shopify-access-token") == self.access_token

    def unauthorized(self, request: Request) -> Response:
        return Response(401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})

    def not_found(self, request: Request) -> Response:
        return Response(404, {"errors": "Not Found"})

    def rate_limited_response(self, request: Request) -> Response:
        return Response(429, {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."},
                        {"Retry-After": self.retry_after, "X-Shopify-Shop-Api-Call-Limit": "40/40"})

    # --- data ------------------------------------------------------------------------------
    def add_customer(self, **fields) -> dict:
        cid = 7000 + len(self.customers) + 1
        customer = {"id": cid, "email": None, "phone": None, "first_name": None, "last_name": None, "note": None,
                    "state": "enabled", "tags": "", "verified_email": True, "created_at": "2024-01-01T00:00:00+09:00",
                    "updated_at": "2024-01-01T00:00:00+09:00", "addresses": [], "default_address": None, **fields}
        self.customers[cid] = customer
        return customer

    def add_order(self, customer_id: int, total_price: str, **fields) -> dict:
        customer = self.customers[customer_id]
        order = {"id": 9000 + len(self.orders) + 1, "email": customer["email"], "total_price": total_price,
                 "currency": "JPY", "created_at": "2024-02-01T00:00:00+09:00",
                 "customer": {"id": customer_id, "email": customer["email"]}, "shipping_address": None, **fields}
        self.orders.append(order)
        return order

    # --- endpoints -------------------------------------------------------------------------
    def _paged(self, request: Request, rows: list[dict], key: str, filters: dict) -> Response:
        limit = self.cap(request.query.get("limit", 50))
        if "page_info" in request.query:
            state = json.loads(base64.urlsafe_b64decode(request.query["page_info"]))
            filters, start = state["f"], state["o"]
            rows = [r for r in rows if self._keep(r, filters)]
        else:
            start = 0
        page = rows[start:start + limit]
        headers = {"X-Shopify-Shop-Api-Call-Limit": f"{min(40, len(self.requests))}/40"}
        if start + limit < len(rows):
            token = base64.urlsafe_b64encode(json.dumps({"f": filters, "o": start + limit}).encode()).decode()
            headers["Link"] = f'<{self.base_url}{request.path}?limit={limit}&page_info={token}>; rel="next"'
        return Response(200, {key: page}, headers)

    @staticmethod
    def _keep(row: dict, filters: dict) -> bool:
        for name, value in filters.items():
            if name == "customer_id":
                if str((row.get("customer") or {}).get("id")) != str(value):
                    return False
            elif str(row.get(name) or "").lower() != str(value).lower():
                return False
        return True

    def shop(self, request: Request) -> Response:
        return Response(200, {"shop": {"id": 1, "name": "Emulated shop", "currency": "JPY"}})

    def customers_search(self, request: Request) -> Response:
        filters = {}
        if "page_info" not in request.query:
            name, _, value = request.query.get("query", "").partition(":")
            if name not in {"email", "phone"} or not value:
                return Response(400, {"errors": {"query": ["is invalid"]}})
            filters = {name: value.strip()}
        rows = list(self.customers.values())
        return self._paged(request, [r for r in rows if self._keep(r, filters)] if filters else rows, "customers", filters)

    def customer_get(self, request: Request) -> Response:
        customer = self.customers.get(int(request.match["id"]))
        return Response(200, {"customer": customer}) if customer else self.not_found(request)

    def customer_update(self, request: Request) -> Response:
        customer = self.customers.get(int(request.match["id"]))
        if customer is None:
            return self.not_found(request)
        changes = (request.json() or {}).get("customer")
        if not isinstance(changes, dict):
            return Response(400, {"errors": {"customer": "Required parameter missing or invalid"}})
        unknown = set(changes) - set(customer) - {"id"}
        if unknown:
            return Response(422, {"errors": {name: ["is not a customer field"] for name in sorted(unknown)}})
        customer.update({k: v for k, v in changes.items() if k != "id"})
        return Response(200, {"customer": customer})

    def customer_delete(self, request: Request) -> Response:
        cid = int(request.match["id"])
        if cid not in self.customers:
            return self.not_found(request)
        if any((o.get("customer") or {}).get("id") == cid for o in self.orders):
            return Response(422, {"errors": {"base": ["Error deleting customer: customer has orders"]}})
        del self.customers[cid]
        return Response(200, {})

    def orders_list(self, request: Request) -> Response:
        filters = {} if "page_info" in request.query else {"customer_id": request.query.get("customer_id", "")}
        rows = self.orders if not filters else [o for o in self.orders if self._keep(o, filters)]
        return self._paged(request, rows, "orders", filters)
