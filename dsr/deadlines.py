"""Legal deadlines per jurisdiction.

- GDPR Art. 12(3): one month from receipt, extendable once by two further months (with reasons,
  told within the first month).
- CCPA §7021: 45 calendar days, one 45-day extension with notice; acknowledge within 10 business
  days.
- APPI 法33条: "without delay" — a configurable internal target (``MAMORU_DSR_APPI_TARGET_DAYS``).

When staff ask the person for more information, the clock stops only where the law lets it
(:data:`PAUSES`, docs/dsr.md "Messages and the paused clock"):

- GDPR: only to confirm identity. Art. 12(6) lets the controller ask for what it needs to confirm
  identity when it has reasonable doubts (recital 64: reasonable measures to verify); until then it
  cannot act, so the month runs from the answer (EDPB Guidelines 01/2022 on the right of access).
  Asking what a request covers does not stop the month (recital 63 allows the question, not the pause).
- CCPA: never. §7021(b): the 45 days begin on receipt "regardless of time required to verify".
- APPI: for identity and for what the request covers. 法32条/37条 let the business set how a
  request is made and ask for what identifies the data; "without delay" runs from a request it can
  act on, so the internal target waits for the answer.
- Elsewhere (``US``, ``OTHER``: our own policy): only to confirm identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta
from django.conf import settings


@dataclass(frozen=True)
class DeadlineRule:
    initial: relativedelta
    extension: relativedelta
    acknowledge_business_days: int | None = None
    basis: str = ""


def rule_for(jurisdiction: str) -> DeadlineRule:
    appi_days = getattr(settings, "MAMORU_DSR_APPI_TARGET_DAYS", 14)
    rules = {
        "EU": DeadlineRule(relativedelta(months=1), relativedelta(months=2), None, "GDPR Art. 12(3)"),
        "US-CA": DeadlineRule(relativedelta(days=45), relativedelta(days=45), 10, "CCPA §7021"),
        "JP": DeadlineRule(relativedelta(days=appi_days), relativedelta(days=appi_days), None,
                           "APPI 法33条 (internal target)"),
    }
    return rules.get(jurisdiction, DeadlineRule(relativedelta(days=30), relativedelta(days=30), None, "policy"))


IDENTITY = "identity"
SCOPE = "scope"
PAUSES: dict[str, frozenset[str]] = {
    "EU": frozenset({IDENTITY}),
    "US-CA": frozenset(),
    "JP": frozenset({IDENTITY, SCOPE}),
}
PAUSE_BASIS = {
    "EU": "GDPR Art. 12(6), recital 64",
    "US-CA": "CCPA §7021(b)",
    "JP": "APPI 法32条・37条",
}


def clock_pauses(*, jurisdiction: str, reason: str) -> bool:
    """Whether asking the person for more information (``reason``: identity or scope) stops the
    deadline clock under ``jurisdiction``'s law."""
    return reason in PAUSES.get(jurisdiction, frozenset({IDENTITY}))


def pause_basis(jurisdiction: str) -> str:
    """The provision the pause decision rests on (shown next to it)."""
    return PAUSE_BASIS.get(jurisdiction, "policy")


def add_business_days(start: datetime, days: int) -> datetime:
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def due_at(*, jurisdiction: str, received_at: datetime) -> datetime:
    return received_at + rule_for(jurisdiction).initial


def acknowledge_due_at(*, jurisdiction: str, received_at: datetime) -> datetime | None:
    days = rule_for(jurisdiction).acknowledge_business_days
    return add_business_days(received_at, days) if days else None


def extended_due_at(*, jurisdiction: str, due: datetime) -> datetime:
    return due + rule_for(jurisdiction).extension
