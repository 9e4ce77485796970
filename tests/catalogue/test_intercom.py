"""Intercom from the catalogue, end to end against the Intercom emulator (contact search with
the cursor in the JSON body, contacts deleted)."""

from __future__ import annotations

import pytest

from tests.catalogue.conftest import SIMILAR, STORED, add_store, package, profile, run
from tests.emulators.intercom import IntercomEmulator

pytestmark = pytest.mark.django_db

TOKEN = "ic-token"


def test_intercom_access_and_erasure(workspaces, mailoutbox, emulator):
    app = IntercomEmulator(access_token=TOKEN)
    app.page_size_cap = 1  # a lead and two users with the address: three pages
    server = emulator(app)
    mine = [app.add_contact(role="lead", email=STORED.lower(), name=None,
                            location={"type": "location", "country": "Japan", "city": "Fukuoka"}),
            app.add_contact(role="user", email=STORED, name="Subject Person", external_id="u-42"),
            app.add_contact(role="user", email=STORED.upper(), name="S. Person", external_id="u-43")]
    for email in SIMILAR:
        app.add_contact(role="user", email=email, name="Someone Else")
    add_store("intercom", server.url, secrets={"access_token": TOKEN})
    profile(workspaces[0])

    # access: the three contacts, whatever the case of the stored address, across cursor pages
    files = package(run(workspaces[0], mailoutbox, "access"))
    assert sorted(c["id"] for c in files["intercom/contacts.json"]) == sorted(c["id"] for c in mine)
    searches = [r for r in app.requests if r[2] == "/contacts/search"]
    assert len(searches) >= 3

    # a 429 without Retry-After: retried by the node's backoff, and nothing is sent before the
    # X-RateLimit-Reset time it named
    app.rate_limit_after = len([r for r in app.requests if r[4]]) + 1
    app.rate_limit_count = 1
    request = run(workspaces[0], mailoutbox, "erasure")
    assert app.rate_limited and request.events.filter(kind="node_retry").exists()
    assert min(app.requests_after_first_429()) >= app.resets[0] - 0.05

    # erasure: the three contacts deleted; the similar addresses untouched
    assert app.deleted == {c["id"] for c in mine}
    assert sorted(c["email"] for c in app.contacts.values()) == sorted(SIMILAR)
    assert request.events.filter(kind="erasure_verified").exists()
