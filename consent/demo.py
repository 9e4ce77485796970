"""Demo data: the purpose catalogue, a demo site with keys, and some consent history."""

from __future__ import annotations

import random
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from consent.models import KeyKind, Purpose, PurposeVersion, Site, VersionStatus
from consent.services import purpose_version_publish, site_key_create

CATALOGUE = [
    {
        "code": "order_fulfilment", "gdpr_basis": "contract", "data_categories": ["contact", "address", "order"],
        "name_en": "Order fulfilment", "name_ja": "注文の処理・配送",
        "description_en": "Process and deliver your orders.", "description_ja": "ご注文の処理と配送に利用します。",
        "retention_days": 2555,
    },
    {
        "code": "marketing_email", "gdpr_basis": "consent", "data_categories": ["contact.email", "name"],
        "name_en": "Marketing e-mails", "name_ja": "メールマガジン",
        "description_en": "News and offers by e-mail.", "description_ja": "新着情報やお得なお知らせをメールでお送りします。",
        "retention_days": 730,
    },
    {
        "code": "analytics", "gdpr_basis": "consent", "data_categories": ["device", "usage"],
        "name_en": "Analytics", "name_ja": "アクセス解析",
        "description_en": "Measure how the site is used to improve it.", "description_ja": "サイト改善のため利用状況を分析します。",
        "retention_days": 395,
    },
    {
        "code": "personalised_ads", "gdpr_basis": "consent", "ccpa_category": "sharing",
        "data_categories": ["device", "usage", "inferences"], "recipients": ["Ad partners"],
        "name_en": "Personalised advertising", "name_ja": "パーソナライズ広告",
        "description_en": "Share data with ad partners for cross-context behavioural advertising.",
        "description_ja": "行動ターゲティング広告のため広告パートナーと共有します。", "retention_days": 395,
    },
    {
        "code": "data_sale", "gdpr_basis": "consent", "ccpa_category": "sale", "appi_category": "third_party",
        "data_categories": ["contact", "purchase_history"], "recipients": ["Partner retailers"],
        "name_en": "Sharing with partner companies", "name_ja": "提携企業への第三者提供",
        "description_en": "Provide your data to partner retailers (a 'sale' under CCPA).",
        "description_ja": "提携小売企業へ個人データを提供します（第三者提供）。", "retention_days": 365,
    },
    {
        "code": "cross_border_transfer", "gdpr_basis": "consent", "appi_category": "cross_border",
        "transfer_country": "United States (no adequacy decision under APPI; contractual safeguards)",
        "data_categories": ["contact", "order"], "recipients": ["Cloud CRM provider (US)"],
        "name_en": "Transfer to the United States", "name_ja": "外国（米国）にある第三者への提供",
        "description_en": "Store customer records with our CRM provider in the United States.",
        "description_ja": "米国の CRM 事業者に顧客情報を保管します（越境移転）。", "retention_days": 1095,
    },
]


def purposes_seed() -> list[Purpose]:
    """Create and publish the demo catalogue (idempotent)."""
    purposes = []
    for order, spec in enumerate(CATALOGUE):
        spec = dict(spec)
        code = spec.pop("code")
        purpose, _created = Purpose.objects.get_or_create(code=code, defaults={"ordering": order * 10})
        if purpose.current_version_id is None:
            version = PurposeVersion.objects.filter(purpose=purpose, status=VersionStatus.DRAFT).first()
            if version is None:
                version = PurposeVersion.objects.create(purpose=purpose, version=1, **spec)
            purpose_version_publish(version=version)
        purposes.append(purpose)
    return purposes


def seed(*, stdout, credentials: dict) -> None:
    from governance.subjects.models import Workspace

    with transaction.atomic():
        purposes = purposes_seed()
        workspace = Workspace.objects.get(slug="shop-jp")
        # The address the demo is served on (seed_demo --bind / MAMORU_PUBLIC_URL): the preference
        # centre's origin and the privacy URL that receipts carry must be where it really runs.
        base = credentials.get("base_url") or "http://127.0.0.1:8000"
        site, created = Site.objects.get_or_create(
            slug="demo-shop", defaults={"workspace": workspace, "name": "Demo Shop"},
        )
        origins = [base, base.replace("://127.0.0.1:", "://localhost:")]
        site.allowed_origins = list(dict.fromkeys([*origins, *(site.allowed_origins or [])]))
        site.privacy_url = f"{base}/privacy/"
        site.save(update_fields=["allowed_origins", "privacy_url"])
        site.purposes.set(purposes)
        _pk, publishable = site_key_create(site=site, kind=KeyKind.PUBLISHABLE)
        _sk, secret = site_key_create(site=site, kind=KeyKind.SECRET)
    credentials["consent_demo_site"] = {
        "site": site.slug,
        "publishable_key": publishable,
        "secret_key": secret,
        "preference_centre": f"/consent/preferences/{site.slug}/",
        "script": "/consent/mamoru-consent.js",
    }
    _history(site, stdout)
    stdout.write(f"consent: {len(purposes)} purposes, site '{site.slug}' with new keys\n")


def _history(site: Site, stdout) -> None:
    """A few weeks of banner decisions so the rates chart has something to show."""
    from consent.models import ConsentEvent
    from consent.services import EventInput, RecordContext, consent_events_record

    if ConsentEvent.objects.filter(site=site).exists():
        return
    rng = random.Random(4)
    ctx = RecordContext(workspace=site.workspace, site=site, actor_label="demo")
    now = timezone.now()
    items = []
    for n in range(300):
        when = now - timedelta(days=rng.randint(0, 29), minutes=rng.randint(0, 1440))
        for code, p_yes in (("marketing_email", 0.4), ("analytics", 0.7), ("personalised_ads", 0.3)):
            items.append(EventInput(
                purpose=code, state="given" if rng.random() < p_yes else "refused", method="banner",
                browser_id=f"demo-browser-{n:05d}", occurred_at=when, language="ja",
            ))
    for start in range(0, len(items), 450):
        consent_events_record(items=items[start:start + 450], ctx=ctx)
