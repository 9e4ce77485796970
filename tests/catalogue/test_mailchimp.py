"""Mailchimp from the catalogue, end to end against the Mailchimp emulator."""

from __future__ import annotations

import pytest

from tests.catalogue.conftest import SIMILAR, STORED, add_store, package, profile, run
from tests.emulators.mailchimp import MailchimpEmulator, subscriber_hash

pytestmark = pytest.mark.django_db

KEY = "0123456789abcdef-us21"
LIST = "a1b2c3d4e5"


def test_mailchimp_access_and_erasure(workspaces, mailoutbox, emulator):
    app = MailchimpEmulator(api_key=KEY, list_id=LIST)
    app.page_size_cap = 2  # five notes: three pages (count / offset / total_items)
    server = emulator(app)
    member = app.add_member(STORED, merge_fields={"FNAME": "Subject", "LNAME": "Person", "PHONE": "090-1234-5678"},
                            ip_signup="203.0.113.7")
    notes = [app.add_note(STORED, f"called about order {i}") for i in range(5)]
    for email in SIMILAR:
        app.add_member(email, merge_fields={"FNAME": "Someone"})
        app.add_note(email, "someone else's note")
    add_store("mailchimp", server.url, params={"server_prefix": "us21", "list_id": LIST}, secrets={"api_key": KEY})
    profile(workspaces[0])

    # access: the member found by the hash of the lower-cased address, all five notes across pages
    files = package(run(workspaces[0], mailoutbox, "access"))
    assert [m["id"] for m in files["mailchimp/members.json"]] == [member["id"]]
    assert files["mailchimp/members.json"][0]["FNAME"] == "Subject"  # merge fields flattened
    assert sorted(n["id"] for n in files["mailchimp/notes.json"]) == sorted(n["id"] for n in notes)
    offsets = [r[3].get("offset") for r in app.requests if r[2].endswith("/notes")]
    assert offsets[:3] == ["0", "2", "4"]

    # rate limited once on the way (Mailchimp sends no Retry-After): the node retries
    app.rate_limit_after = len([r for r in app.requests if r[4]]) + 1
    app.rate_limit_count = 1
    request = run(workspaces[0], mailoutbox, "erasure")
    assert app.rate_limited
    # erasure: notes deleted, then the member permanently deleted; the similar addresses untouched
    assert subscriber_hash(STORED) in app.permanently_deleted
    assert subscriber_hash(STORED) not in app.members and not app.notes.get(subscriber_hash(STORED))
    assert sorted(m["email_address"] for m in app.members.values()) == sorted(SIMILAR)
    assert all(len(app.notes[subscriber_hash(e)]) == 1 for e in SIMILAR)
    assert request.events.filter(kind="erasure_verified").exists()
