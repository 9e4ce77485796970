"""Klaviyo from the catalogue, end to end against the Klaviyo emulator (the Data Privacy API's
asynchronous deletion, read until gone)."""

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
from tests.emulators.klaviyo import KlaviyoEmulator

pytestmark = pytest.mark.django_db

KEY = "pk_emulator"


def test_klaviyo_access_and_erasure(workspaces, mailoutbox, emulator):
    app = KlaviyoEmulator(api_key=KEY)
    app.deletion_reads = 1  # each profile still reads back once after its deletion was requested
    server = emulator(app)
    by_email = app.add_profile(email=STORED, first_name="Subject", last_name="Person",
                               location={"city": "Kyoto", "country": "Japan", "ip": "203.0.113.9"})
    by_phone = app.add_profile(phone_number=SUBJECT_PHONE, first_name="S.")  # an SMS-only profile
    others = [app.add_profile(email=email, first_name="Someone") for email in SIMILAR]
    others.append(app.add_profile(phone_number="+819012345679"))
    add_store("klaviyo", server.url, secrets={"api_key": KEY})
    profile(workspaces[0], phone=SUBJECT_PHONE)

    # access: the profile found by e-mail (stored mixed-case) and the one found by phone, nobody else
    files = package(run(workspaces[0], mailoutbox, "access"))
    found = files["klaviyo/profiles.json"]
    assert sorted(p["id"] for p in found) == sorted([by_email["id"], by_phone["id"]])
    assert {p["first_name"] for p in found} == {"Subject", "S."}  # attributes flattened into fields

    # a 429 with Retry-After: 1 is waited out; the deletion requests run asynchronously: each
    # profile still reads back after it, and the connector reads until Klaviyo answers 404
    app.rate_limit_after = len([r for r in app.requests if r[4]]) + 1
    app.rate_limit_count = 1
    app.retry_after = "1"
    request = run(workspaces[0], mailoutbox, "erasure")
    assert app.rate_limited
    assert min(app.requests_after_first_429()) - app.rate_limited[0] >= 1.0
    assert sorted(app.deletion_jobs) == sorted([by_email["id"], by_phone["id"]])
    assert app.reads_while_deleting >= 2 * app.deletion_reads and not app.pending
    assert app.deleted == {by_email["id"], by_phone["id"]}
    assert sorted(app.profiles) == sorted(o["id"] for o in others)
    assert request.events.filter(kind="erasure_verified").exists()
