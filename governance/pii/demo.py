"""Demo data: real scans of synthetic customer records, spread over two weeks, for the charts."""

from __future__ import annotations

import random
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from faker import Faker

from governance.pii.models import Channel, PiiAlert, ScanFinding
from governance.pii.policy import ingest_policy
from governance.pii.scanner import scanner_get
from governance.pii.services import findings_store
from governance.subjects.models import Workspace

DAYS = 14
NOTES_JA = ["配送時間の指定あり。", "カード{card}で支払い済み。", "折り返しは{phone}まで。", "特になし。"]
NOTES_EN = ["Gift wrap requested.", "Paid with card {card}.", "Call back at {phone}.", "No notes."]


def _records(locale: str, count: int, seed: int) -> list[dict]:
    fake = Faker(locale)
    fake.seed_instance(seed)
    rng = random.Random(seed)
    notes = NOTES_JA if locale == "ja_JP" else NOTES_EN
    records = []
    for _ in range(count):
        note = rng.choice(notes).format(card=fake.credit_card_number(), phone=fake.phone_number())
        records.append({
            "email": fake.email(), "phone": fake.phone_number(), "full_name": fake.name(),
            "address": fake.address().replace("\n", ", "), "postal_code": fake.postcode(),
            "extra": {"notes": note, "plan": rng.choice(["free", "gold"])},
        })
    return records


def seed(*, stdout, credentials: dict) -> None:
    """Scan demo records and store their findings (no profiles created, no values stored)."""
    if ScanFinding.objects.exists():
        stdout.write("pii: findings already seeded")
        return
    scanner = scanner_get()
    now = timezone.now()
    total = 0
    with transaction.atomic():
        for slug, locale, source, seed_value in (
            ("shop-jp", "ja_JP", "crm-export", 5), ("shop-eu", "en_US", "newsletter-import", 6),
        ):
            workspace = Workspace.objects.filter(slug=slug).first()
            records = _records(locale, 60, seed_value)
            findings = scanner.scan_records(records)
            rows = findings_store(findings=findings, channel=Channel.INGEST, source=source,
                                  workspace=workspace, policy=ingest_policy())
            rng = random.Random(seed_value)
            for row in rows:
                row.created_at = now - timedelta(days=rng.randrange(DAYS), hours=rng.randrange(24))
            ScanFinding.objects.bulk_update(rows, ["created_at"], batch_size=500)
            total += len(rows)
    stdout.write(
        f"pii: {total} findings seeded, {PiiAlert.objects.count()} unexpected-PII alert(s) open"
    )
