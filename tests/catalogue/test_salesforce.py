"""Salesforce from the catalogue, end to end against the Salesforce emulator (OAuth 2.0 refresh
token, SOQL batches linked by nextRecordsUrl, contacts and leads deleted)."""

from __future__ import annotations

import pytest

from tests.catalogue.conftest import SIMILAR, STORED, add_store, package, profile, run
from tests.emulators.salesforce import SalesforceEmulator

pytestmark = pytest.mark.django_db

PARAMS = {"my_domain": "acme", "client_id": "sf-client"}
SECRETS = {"client_secret": "sf-secret", "refresh_token": "sf-refresh"}


def test_salesforce_access_and_erasure(workspaces, mailoutbox, emulator):
    app = SalesforceEmulator(client_id="sf-client", **SECRETS)
    app.page_size_cap = 2  # three duplicate contacts: two batches (nextRecordsUrl)
    server = emulator(app)
    contacts = [app.add("Contact", Email=STORED, FirstName="Subject", LastName="Person",
                        MailingCity="Osaka", Description=f"duplicate {i}") for i in range(3)]
    lead = app.add("Lead", Email=STORED.upper(), LastName="Person", Company="Acme KK", Status="Open")
    for email in SIMILAR:
        app.add("Contact", Email=email, LastName="Else")
        app.add("Lead", Email=email, LastName="Else", Company="Other")
    add_store("salesforce", server.url, params=PARAMS, secrets=SECRETS)
    profile(workspaces[0])

    # every session expires after four requests: the connector fetches a new one and goes on
    app.max_session_uses = 4
    files = package(run(workspaces[0], mailoutbox, "access"))
    assert sorted(c["Id"] for c in files["salesforce/contacts.json"]) == sorted(c["Id"] for c in contacts)
    assert [x["Id"] for x in files["salesforce/leads.json"]] == [lead["Id"]]
    assert app.expired_rejections >= 1 and app.tokens_issued >= 2
    assert any("/query/" in r[2] for r in app.requests), "the second batch was read at nextRecordsUrl"

    # a 503 with Retry-After: 1 is waited out (the next request comes at least 1 s later)
    app.rate_limit_after = len([r for r in app.requests if r[4]]) + 2
    app.rate_limit_count = 1
    app.retry_after = "1"
    request = run(workspaces[0], mailoutbox, "erasure")
    assert app.rate_limited
    assert min(app.requests_after_first_429()) - app.rate_limited[0] >= 1.0

    # erasure: the person's contacts and lead are deleted (in the Recycle Bin, no longer readable)
    left = [r for rows in app.records.values() for r in rows.values()]
    assert not [r for r in left if r["Email"].lower() == STORED.lower()]
    assert set(app.recycle_bin) == {lead["Id"], *(c["Id"] for c in contacts)}
    assert sorted(r["Email"] for r in left) == sorted(SIMILAR * 2)
    assert request.events.filter(kind="erasure_verified").exists()


def test_salesforce_request_allowance_used_up_is_reported(workspaces, mailoutbox, emulator):
    from dsr.execution import run_inline
    from dsr.models import RequestStatus
    from tests.dsr.conftest import submit_verified

    app = SalesforceEmulator(client_id="sf-client", **SECRETS)
    server = emulator(app)
    app.add("Contact", Email=STORED, LastName="Person")
    add_store("salesforce", server.url, params=PARAMS, secrets=SECRETS)
    profile(workspaces[0])
    app.request_limit_exceeded = True
    request = submit_verified(workspaces[0], mailoutbox, "access", email="subject.person@example.com")
    run_inline(request)
    request.refresh_from_db()
    assert request.status != RequestStatus.COMPLETED
    errors = [t.error for t in request.tasks.all() if t.error]
    assert any("REQUEST_LIMIT_EXCEEDED" in e or "TotalRequests Limit exceeded" in e for e in errors), errors
