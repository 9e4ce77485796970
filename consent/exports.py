"""Consent proof export for one subject (GDPR Art. 7(1): demonstrate consent)."""

from __future__ import annotations

from django.utils import timezone

from audit.services import access_record
from consent.chain import chain_verify
from consent.receipts import receipt_json
from consent.selectors import consent_events_for_profile, profile_consent_overview
from governance.subjects.models import Profile


def consent_proof_export(*, profile: Profile, actor=None) -> dict:
    """Every consent event of the profile as receipts, the current state and a chain check."""
    events = list(consent_events_for_profile(profile=profile))
    # Each event's own digest; continuity of the whole chain is `manage.py verify_consent_chain`.
    problems = [p.message for p in chain_verify(events) if p.kind == "changed"]
    access_record(actor=actor, obj=profile, fields=["consent_events"], reason="consent proof export",
                  via="consent:export")
    return {
        "profile_id": str(profile.pk),
        "exported_at": timezone.now().isoformat(),
        "state": profile_consent_overview(profile=profile),
        "events": [receipt_json(event=e) for e in events],
        "chain": {"events_intact": not problems, "problems": problems[:20]},
    }
