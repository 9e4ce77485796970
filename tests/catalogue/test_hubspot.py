"""HubSpot CRM from the catalogue, end to end against the HubSpot emulator (OAuth 2.0 refresh)."""

from __future__ import annotations

import pytest

from tests.catalogue.conftest import (
    SIMILAR,
    STORED,
    SUBJECT_PHONE,
    add_store,
    package,
    profile,
    run,
)
from tests.emulators.hubspot import HubSpotEmulator

pytestmark = pytest.mark.django_db

SECRETS = {"client_secret": "hs-secret", "refresh_token": "hs-refresh-1"}


def test_hubspot_access_and_erasure(workspaces, mailoutbox, emulator):
    app = HubSpotEmulator(client_id="hs-client", **SECRETS)
    app.page_size_cap = 1  # the two contacts found by phone come on two pages (paging.next.after)
    server = emulator(app)
    by_email = app.add_contact(email=STORED, firstname="Subject", lastname="Person", city="Osaka")
    by_phone = [app.add_contact(phone=SUBJECT_PHONE, firstname="S.", lastname="Person") for _ in range(2)]
    for email in SIMILAR:
        app.add_contact(email=email, firstname="Someone")
    app.add_contact(phone="+819012345679", firstname="Neighbour")
    add_store("hubspot", server.url, params={"client_id": "hs-client"}, secrets=SECRETS)
    profile(workspaces[0], phone=SUBJECT_PHONE)

    # every access token expires after three requests: the connector refreshes it and goes on
    app.max_token_uses = 3
    files = package(run(workspaces[0], mailoutbox, "access"))
    found = files["hubspot/contacts.json"]
    assert sorted(c["id"] for c in found) == sorted([by_email["id"], *(c["id"] for c in by_phone)])
    assert {c["firstname"] for c in found} == {"Subject", "S."}  # properties flattened into fields
    assert app.expired_rejections >= 1 and app.tokens_issued >= 2
    searches = [r for r in app.requests if r[2].endswith("/search")]
    assert len(searches) >= 3

    # a 429 on the way: retried; erasure through the GDPR delete endpoint
    app.rate_limit_after = len([r for r in app.requests if r[4]]) + 2
    app.rate_limit_count = 1
    request = run(workspaces[0], mailoutbox, "erasure")
    assert app.rate_limited
    assert app.gdpr_deleted == {by_email["id"], *(c["id"] for c in by_phone)}
    assert sorted(c["properties"]["email"] or c["properties"]["phone"] for c in app.contacts.values()) == \
        sorted([*SIMILAR, "+819012345679"])
    assert request.events.filter(kind="erasure_verified").exists()


def test_hubspot_wrong_refresh_token_fails_cleanly(db, emulator):
    from dsr.catalogue.services import store_connection_test
    from governance.datamap.models import Store

    server = emulator(HubSpotEmulator(client_id="hs-client", **SECRETS))
    add_store("hubspot", server.url, params={"client_id": "hs-client"},
              secrets={**SECRETS, "refresh_token": "revoked"}, offline=True)
    result = store_connection_test(store=Store.objects.get(key="hubspot"))
    assert not result.ok and "token request" in result.message and "revoked" not in result.message
