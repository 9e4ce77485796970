"""Legal deadlines per jurisdiction.

- GDPR Art. 12(3): one month from receipt, extendable once by two further months (with reasons,
  told within the first month).
- CCPA §7021: 45 calendar days, one 45-day extension with notice; acknowledge within 10 business
  days.
- APPI 法33条: "without delay" — a configurable internal target (``MAMORU_DSR_APPI_TARGET_DAYS``).
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
