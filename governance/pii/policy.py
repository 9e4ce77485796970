"""Which entities are expected in which field (``MAMORU_PII_INGEST_POLICY``).

A finding whose entity is not listed for its field is *unexpected*: it raises an alert. A field
missing from the policy expects nothing (a card number in ``notes`` is always unexpected).
"""

from __future__ import annotations

from django.conf import settings

DEFAULT_INGEST_POLICY: dict[str, list[str]] = {
    "email": ["EMAIL_ADDRESS"],
    "phone": ["PHONE_NUMBER"],
    "customer_id": [],
    "full_name": ["PERSON"],
    "kana_name": ["PERSON"],
    "address": ["LOCATION", "JP_POSTAL_CODE"],
    "postal_code": ["JP_POSTAL_CODE"],
    "birth_date": ["DATE_TIME"],
}


def ingest_policy() -> dict[str, set[str]]:
    raw = getattr(settings, "MAMORU_PII_INGEST_POLICY", None) or DEFAULT_INGEST_POLICY
    return {field: set(entities) for field, entities in raw.items()}


def policy_field(field_path: str) -> str:
    """Return the policy key for a finding's path: ``extra.notes`` -> ``notes``."""
    leaf = field_path.rsplit(".", 1)[-1]
    return leaf.split("[", 1)[0]


def finding_expected(*, policy: dict[str, set[str]], field_path: str, entity_type: str) -> bool:
    return entity_type in policy.get(policy_field(field_path), set())
