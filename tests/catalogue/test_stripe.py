"""Stripe from the catalogue, end to end against the Stripe emulator."""

from __future__ import annotations

import pytest

from tests.catalogue.conftest import SIMILAR, STORED, add_store, package, profile, run
from tests.emulators.stripe import StripeEmulator

pytestmark = pytest.mark.django_db

KEY = "sk_test_emulator"


def _data(app: StripeEmulator) -> tuple[dict, list[dict]]:
    subject = app.add_customer(email=STORED, name="Subject Person", phone="+819012345678",
                               address={"line1": "1-2-3 Shibuya", "postal_code": "150-0002", "country": "JP"})
    for email in SIMILAR:
        other = app.add_customer(email=email, name="Someone Else")
        app.add_charge(other["id"], 500, receipt_email=email)
    charges = [app.add_charge(subject["id"], 1000 + i, receipt_email=STORED) for i in range(5)]
    return subject, charges


def test_stripe_access_and_erasure(workspaces, mailoutbox, emulator):
    app = StripeEmulator(api_key=KEY)
    app.page_size_cap = 2  # five charges: three pages (starting_after = the last id)
    server = emulator(app)
    subject, charges = _data(app)
    add_store("stripe", server.url, secrets={"api_key": KEY})
    profile(workspaces[0])

    # access: exactly the person's customer record (stored mixed-case) and all five charges
    files = package(run(workspaces[0], mailoutbox, "access"))
    assert [c["id"] for c in files["stripe/customers.json"]] == [subject["id"]]
    assert sorted(c["id"] for c in files["stripe/charges.json"]) == sorted(c["id"] for c in charges)
    emails = {c["email"] for c in files["stripe/customers.json"]} | {c["receipt_email"] for c in files["stripe/charges.json"]}
    assert emails == {STORED}
    charge_pages = [r for r in app.requests if r[2] == "/v1/charges"]
    assert len(charge_pages) >= 3 and any("starting_after" in r[3] for r in charge_pages)

    # a 429 (Stripe sends no Retry-After) is retried by the node's backoff, not failed
    app.rate_limit_after = len([r for r in app.requests if r[4]])
    app.rate_limit_count = 1

    # erasure: the customer is deleted at Stripe; charges kept (accounting records); others untouched
    request = run(workspaces[0], mailoutbox, "erasure")
    assert app.rate_limited, "the emulator answered 429 once"
    assert request.events.filter(kind="node_retry").exists()
    assert app.deleted == {subject["id"]}
    assert [c for c in app.live() if c["email"].lower() == STORED.lower()] == []
    assert sorted(c["email"] for c in app.live()) == sorted(SIMILAR)
    assert len([c for c in app.charges if c["customer"] == subject["id"]]) == 5
    assert request.events.filter(kind="erasure_verified").exists()


def test_stripe_wrong_key_is_refused_when_added(db, emulator):
    from governance.datamap.models import Store
    from governance.datamap.spec import DataMapInvalid

    server = emulator(StripeEmulator(api_key=KEY))
    with pytest.raises(DataMapInvalid) as info:
        add_store("stripe", server.url, secrets={"api_key": "sk_test_wrong"})
    assert "Invalid API Key provided" in str(info.value)
    assert not Store.objects.filter(key="stripe").exists()
