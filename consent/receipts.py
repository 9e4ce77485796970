"""Consent receipts: Kantara Consent Receipt v1.1 fields plus ISO/IEC TS 27560 record fields."""

from __future__ import annotations

from django.conf import settings
from django.core import signing

from consent.models import ConsentEvent, ConsentStateValue, Method, PurposeVersion

RECEIPT_SALT = "consent.receipt"


def receipt_token(event: ConsentEvent) -> str:
    """A signed token that lets the person open their receipt page without logging in."""
    return signing.dumps(str(event.id), salt=RECEIPT_SALT, compress=True)


def receipt_token_valid(event_id: str, token: str) -> bool:
    try:
        return signing.loads(token, salt=RECEIPT_SALT) == str(event_id)
    except signing.BadSignature:
        return False


def receipt_json(*, event: ConsentEvent) -> dict:
    """The receipt of one consent record. The subject appears only as its pseudonym."""
    version = PurposeVersion.objects.filter(purpose_id=event.purpose_id, version=event.purpose_version).first()
    lang = "ja" if (event.language or "").startswith("ja") else "en"
    site = event.site
    purpose_name = version.name(lang) if version else event.purpose.code
    consent_type = "EXPLICIT" if event.method not in (Method.GPC, Method.IMPORT) else "IMPLICIT"
    return {
        "version": "KI-CR-v1.1.0",
        "jurisdiction": event.jurisdiction,
        "consentTimestamp": int(event.occurred_at.timestamp()),
        "collectionMethod": event.method,
        "consentReceiptID": str(event.id),
        "language": event.language or lang,
        "piiPrincipalId": event.subject_pseudonym,
        "piiControllers": [{
            "piiController": event.workspace.name,
            "onBehalf": False,
            "contact": "Data Protection Officer",
            "email": settings.DEFAULT_FROM_EMAIL,
            "piiControllerUrl": site.privacy_url if site and site.privacy_url else "",
        }],
        "policyUrl": event.notice_url or (version.notice_url if version else "") or (site.privacy_url if site else ""),
        "services": [{
            "service": site.name if site else event.workspace.name,
            "purposes": [{
                "purpose": purpose_name,
                "purposeCategory": [event.purpose.code],
                "consentType": consent_type,
                "piiCategory": list(version.data_categories or []) if version else [],
                "primaryPurpose": True,
                "termination": (f"{version.retention_days} days" if version and version.retention_days
                                else "until withdrawn"),
                "thirdPartyDisclosure": bool(version and version.recipients),
                "thirdPartyName": ", ".join(version.recipients or []) if version else "",
            }],
        }],
        "sensitive": bool(version and version.ccpa_category == "limit_sensitive"),
        "spiCat": [],
        "iso27560": {
            "schema_version": "ISO/IEC TS 27560:2023",
            "record_id": str(event.id),
            "subject": event.subject_pseudonym,
            "processing": {
                "purpose": event.purpose.code,
                "purpose_version": event.purpose_version,
                "legal_basis": {"gdpr": version.gdpr_basis if version else None,
                                "ccpa": (version.ccpa_category or None) if version else None,
                                "appi": (version.appi_category or None) if version else None},
                "data_categories": list(version.data_categories or []) if version else [],
                "recipients": list(version.recipients or []) if version else [],
                "retention_days": version.retention_days if version else None,
                "jurisdiction": event.jurisdiction,
                "notice": event.notice_url or None,
                "withdrawal": "Use the preference centre or call POST /api/v1/consent/events with state 'withdrawn'.",
            },
            "event": {
                "type": "consent",
                "state": event.state,
                "time": event.occurred_at.isoformat(),
                "recorded": event.recorded_at.isoformat(),
                "method": event.method,
                "by": "data subject" if event.method not in (Method.IMPORT, Method.DSR) else "controller",
                "page": event.page_url or None,
                "signals": event.signals or {},
            },
            "proof": {
                "request_hmac": event.proof or None,
                "chain": {"seq": event.seq, "prev_hash": event.prev_hash, "entry_hash": event.entry_hash},
                "redacted": event.redacted_at is not None,
            },
        },
        "given": event.state == ConsentStateValue.GIVEN,
    }
