"""Brevo from the catalogue, end to end against the Brevo emulator (contact by e-mail, the
transactional e-mail log across offset pages, both deleted)."""

from __future__ import annotations

import pytest

from tests.catalogue.conftest import SIMILAR, STORED, add_store, package, profile, run
from tests.emulators.brevo import BrevoEmulator

pytestmark = pytest.mark.django_db

KEY = "xkeysib-emulator"


def test_brevo_access_and_erasure(workspaces, mailoutbox, emulator):
    app = BrevoEmulator(api_key=KEY)
    app.page_size_cap = 2  # five logged e-mails: three offset pages
    server = emulator(app)
    contact = app.add_contact(STORED, FIRSTNAME="Subject", LASTNAME="Person", SMS="+33612345678")
    sent = [app.add_email(STORED if i % 2 else STORED.lower(), f"Votre commande n°{i}") for i in range(5)]
    for email in SIMILAR:
        app.add_contact(email, FIRSTNAME="Autre")
        app.add_email(email, "Someone else's order")
    add_store("brevo", f"{server.url}/v3", secrets={"api_key": KEY})
    profile(workspaces[0])

    # access: the contact (attributes flattened) and exactly the five e-mails sent to the address
    files = package(run(workspaces[0], mailoutbox, "access"))
    assert [(c["id"], c["FIRSTNAME"]) for c in files["brevo/contacts.json"]] == [(contact["id"], "Subject")]
    assert sorted(e["uuid"] for e in files["brevo/emails.json"]) == sorted(e["uuid"] for e in sent)
    pages = [r for r in app.requests if r[2] == "/v3/smtp/emails"]
    assert len(pages) >= 3 and any(r[3].get("offset") == "4" for r in pages)

    # a 429 whose x-sib-ratelimit-reset says 1 s: later requests wait that long, the node retries
    app.rate_limit_after = len([r for r in app.requests if r[4]]) + 1
    app.rate_limit_count = 1
    app.retry_after = "1"
    request = run(workspaces[0], mailoutbox, "erasure")
    assert app.rate_limited and request.events.filter(kind="node_retry").exists()
    assert min(app.requests_after_first_429()) - app.rate_limited[0] >= 1.0

    # erasure: the contact and the five log entries are gone; the similar addresses untouched
    assert app.deleted_contacts == {contact["id"]}
    assert app.deleted_logs == {e["uuid"] for e in sent}
    assert sorted(c["email"] for c in app.contacts.values()) == sorted(SIMILAR)
    assert sorted(e["email"] for e in app.emails) == sorted(SIMILAR)
    assert request.events.filter(kind="erasure_verified").exists()
