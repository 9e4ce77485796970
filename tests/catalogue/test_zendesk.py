"""Zendesk Support from the catalogue, end to end against the Zendesk emulator."""

from __future__ import annotations

import pytest

from tests.catalogue.conftest import SIMILAR, STORED, add_store, package, profile, run
from tests.emulators.zendesk import ZendeskEmulator

pytestmark = pytest.mark.django_db

AGENT = "dpo@example.com"
TOKEN = "zd-token"


def test_zendesk_access_and_erasure(workspaces, mailoutbox, emulator):
    app = ZendeskEmulator(agent_email=AGENT, api_token=TOKEN)
    app.page_size_cap = 2  # five tickets: three cursor pages
    server = emulator(app)
    user = app.add_user(name="Subject Person", email=STORED, notes="VIP; prefers e-mail")
    tickets = [app.add_ticket(user["id"], f"Order {i} arrived broken", "My address is …") for i in range(5)]
    others = [app.add_user(name="Someone Else", email=email) for email in SIMILAR]
    for other in others:
        app.add_ticket(other["id"], "Someone else's ticket")
    add_store("zendesk", server.url, params={"subdomain": "example", "agent_email": AGENT},
              secrets={"api_token": TOKEN})
    profile(workspaces[0])

    # access: the search also returns the similar addresses (Zendesk matches parts of values);
    # only the person's user is kept, with all five tickets across cursor pages
    files = package(run(workspaces[0], mailoutbox, "access"))
    assert [u["id"] for u in files["zendesk/users.json"]] == [user["id"]]
    assert sorted(t["id"] for t in files["zendesk/tickets.json"]) == sorted(t["id"] for t in tickets)
    ticket_pages = [r for r in app.requests if r[2].endswith("/tickets/requested.json")]
    assert len(ticket_pages) >= 3 and any("page[after]" in r[3] for r in ticket_pages)

    # a 429 with Retry-After: 1 is waited out (the next request comes at least 1 s later)
    app.rate_limit_after = len([r for r in app.requests if r[4]]) + 2
    app.rate_limit_count = 1
    app.retry_after = "1"
    request = run(workspaces[0], mailoutbox, "erasure")
    assert app.rate_limited
    assert min(app.requests_after_first_429()) - app.rate_limited[0] >= 1.0

    # erasure: tickets soft- then permanently deleted; the user bulk-deleted through a job polled
    # until completed, then permanently deleted
    assert app.job_polls and all(j["status"] == "completed" for j in app.jobs.values())
    assert len(app.job_polls) >= app.job_polls_needed
    assert user["id"] not in app.users and not app.soft_deleted_users
    assert not [t for t in app.tickets.values() if t["requester_id"] == user["id"]]
    assert sorted(u["email"] for u in app.users.values()) == sorted(SIMILAR)
    assert len([t for t in app.tickets.values() if t["requester_id"] in {o["id"] for o in others}]) == 3
    assert request.events.filter(kind="erasure_verified").exists()
