"""Shopify from the catalogue, end to end against the Shopify emulator (Link-header pages)."""

from __future__ import annotations

import pytest

from tests.catalogue.conftest import SIMILAR, STORED, add_store, package, profile, run
from tests.emulators.shopify import PREFIX, ShopifyEmulator

pytestmark = pytest.mark.django_db

TOKEN = "shpat_emulator"


def test_shopify_access_and_erasure(workspaces, mailoutbox, emulator):
    app = ShopifyEmulator(access_token=TOKEN)
    app.page_size_cap = 2  # five orders: three pages linked by the Link header (page_info)
    server = emulator(app)
    subject = app.add_customer(email=STORED, first_name="Subject", last_name="Person", phone="+819012345678",
                               note="Leave at the door", addresses=[{"address1": "1-2-3 Umeda", "zip": "530-0001"}])
    orders = [app.add_order(subject["id"], f"{1000 + i}.00") for i in range(5)]
    others = [app.add_customer(email=email, first_name="Someone") for email in SIMILAR]
    for other in others:
        app.add_order(other["id"], "10.00")
    add_store("shopify", server.url + PREFIX, params={"shop": "example"}, secrets={"access_token": TOKEN})
    profile(workspaces[0])

    files = package(run(workspaces[0], mailoutbox, "access"))
    assert [c["id"] for c in files["shopify/customers.json"]] == [subject["id"]]
    assert sorted(o["id"] for o in files["shopify/orders.json"]) == sorted(o["id"] for o in orders)
    order_pages = [r for r in app.requests if r[2].endswith("/orders.json")]
    assert len(order_pages) >= 3 and any("page_info" in r[3] for r in order_pages)

    # a 429 with Retry-After: 1.0 (Shopify writes seconds with a decimal) is waited out
    app.rate_limit_after = len([r for r in app.requests if r[4]]) + 2
    app.rate_limit_count = 1
    request = run(workspaces[0], mailoutbox, "erasure")
    assert app.rate_limited
    assert min(app.requests_after_first_429()) - app.rate_limited[0] >= 1.0

    # erasure: the customer anonymised in place (Shopify keeps customers who have orders);
    # orders kept as accounting records; the similar customers untouched
    after = app.customers[subject["id"]]
    assert after["email"] is None and after["phone"] is None and after["note"] is None
    assert after["addresses"] is None
    assert after["first_name"] != "Subject" and after["last_name"] != "Person"
    assert not [c for c in app.customers.values() if (c["email"] or "").lower() == STORED.lower()]
    assert [c["email"] for c in others] == list(SIMILAR)
    assert all(app.customers[c["id"]]["first_name"] == "Someone" for c in others)
    assert len([o for o in app.orders if o["customer"]["id"] == subject["id"]]) == 5
    assert request.events.filter(kind="erasure_verified").exists()
