"""The access package is for people (issue 12, finding 9): summary.html shows the person's own data
in their language and time zone, with the Art. 15 information that applies to them; the JSON has
ISO 8601 times and numbers; the summary's links are the zip's paths."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile
from decimal import Decimal

import pytest
import sqlalchemy as sa

from dsr.execution import run_inline
from dsr.models import RequestStatus
from dsr.package import package_stream
from tests.dsr.conftest import mailing, postgres_url, submit_verified  # noqa: F401

pytestmark = pytest.mark.django_db

EMAIL = "hanako.yamada@example.jp"
NAME = "山田 花子"
HTMLISH = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
CREATED = dt.datetime(2022, 3, 11, 0, 0, 0)  # naive in the store: UTC
TOTALS = [Decimal("1234.50"), Decimal("80.00"), Decimal("19.99")]
#: The summary template's own English wording: none of it may appear in the Japanese summary.
ENGLISH_LABELS = [
    "Your personal data", "Answer to your request", "Received on", "prepared on", "records about you",
    "Times are shown", "Where we hold data", "Your data", "record", "files:", "Only the first",
    "We also searched", "How we use your data", "Purposes of processing", "Legal basis",
    "You gave your consent", "Applies because", "Kept for", "Categories of personal data", "Recipients",
    "Retention", "We keep your data", "Source of the data", "Automated decisions", "Your rights",
    "You may ask us", "The complete data", "kept to meet", "years", "days", "None.",
    "a service that processes", "Art. 6(1)",
]

DATAMAP = """\
version: 1
stores:
  shop:
    type: sql
    name: ウェブショップ
    connection: {{url: "{shop_url}"}}
    collections:
      customers:
        description: 会員アカウント
        fields:
          id: {{primary_key: true, identity: customer_id, namespace: shop}}
          email: {{category: user.contact.email, identity: email, strategy: hash, description: メールアドレス}}
          name: {{category: user.name}}
          phone: {{category: user.contact.phone_number}}
          note: {{category: user.content.private, description: Notes by our staff}}
          created_at: {{category: system.operations}}
          birth_date: {{category: user.demographic.date_of_birth}}
      orders:
        description: Orders you placed
        fields:
          id: {{primary_key: true}}
          customer_id: {{references: [shop.customers.id]}}
          total: {{category: user.behavior.purchase_history, strategy: retain, retention: 7 years,
                   legal_basis: "Tax law: invoices kept 7 years"}}
  crm:
    type: sql
    name: サポート窓口
    connection: {{url: "{crm_url}"}}
    collections:
      tickets:
        description: お問い合わせ
        fields:
          id: {{primary_key: true}}
          email: {{category: user.contact.email, identity: email, strategy: delete_row}}
          body: {{category: user.content.private}}
          opened_at: {{category: system.operations}}
      lab_results:
        description: 検査結果
        fields:
          id: {{primary_key: true}}
          email: {{category: user.contact.email, identity: email}}
          result: {{category: user.health_and_medical}}
  mailing:
    type: http
    name: Newsletter Processor GmbH
    connection: {{base_url: "{mailing_url}", allow_internal_hosts: true, timeout: 5, not_found_statuses: [404]}}
    secrets: {{token: test-token}}
    collections:
      members:
        options:
          lookup: {{path: /members, params: {{email: "{{email}}"}}, rows: data}}
        fields:
          id: {{primary_key: true}}
          email: {{category: user.contact.email, identity: email, strategy: delete_row}}
"""


def _stores(shop_url: str, crm_url: str) -> None:
    shop_meta, crm_meta = sa.MetaData(), sa.MetaData()
    customers = sa.Table(
        "customers", shop_meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(200)), sa.Column("name", sa.String(200)), sa.Column("phone", sa.String(40)),
        sa.Column("note", sa.Text), sa.Column("created_at", sa.DateTime), sa.Column("birth_date", sa.DateTime),
    )
    orders = sa.Table(
        "orders", shop_meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("customer_id", sa.Integer), sa.Column("total", sa.Numeric(12, 2)),
    )
    tickets = sa.Table(
        "tickets", crm_meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(200)), sa.Column("body", sa.Text), sa.Column("opened_at", sa.DateTime),
    )
    lab = sa.Table(
        "lab_results", crm_meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(200)), sa.Column("result", sa.Text),
    )
    shop, crm = sa.create_engine(shop_url), sa.create_engine(crm_url)
    shop_meta.create_all(shop)
    crm_meta.create_all(crm)
    with shop.begin() as conn:
        conn.execute(customers.insert(), [
            {"id": 1, "email": EMAIL, "name": NAME, "phone": None, "note": HTMLISH, "created_at": CREATED,
             "birth_date": dt.datetime(1990, 5, 1)},
            {"id": 2, "email": "someone.else@example.jp", "name": "佐藤 次郎", "phone": "090-1111-2222",
             "note": "other", "created_at": CREATED, "birth_date": None},
        ])
        conn.execute(orders.insert(), [{"id": 10 + i, "customer_id": 1, "total": t} for i, t in enumerate(TOTALS)]
                     + [{"id": 99, "customer_id": 2, "total": Decimal("5.00")}])
    with crm.begin() as conn:
        conn.execute(tickets.insert(), [
            {"id": 7, "email": EMAIL, "body": "注文 #10 について & <b>急ぎ</b>", "opened_at": dt.datetime(2025, 1, 2, 15, 30)},
        ])
        conn.execute(lab.insert(), [{"id": 1, "email": "someone.else@example.jp", "result": "other"}])
    shop.dispose()
    crm.dispose()


def _purposes() -> None:
    from consent.models import Purpose, PurposeVersion
    from consent.services import purpose_version_publish

    def make(code, *, basis, name_en, name_ja, categories=(), recipients=(), days=None):
        purpose = Purpose.objects.create(code=code)
        version = PurposeVersion.objects.create(
            purpose=purpose, version=1, name_en=name_en, name_ja=name_ja, description_en=f"{name_en}.",
            description_ja=f"{name_ja}のため。", gdpr_basis=basis, data_categories=list(categories),
            recipients=list(recipients), retention_days=days,
        )
        purpose_version_publish(version=version)

    make("newsletter", basis="consent", name_en="Newsletter", name_ja="メールマガジン",
         recipients=["配信代行株式会社"], days=365)
    make("ads", basis="consent", name_en="Personalised ads", name_ja="広告配信",
         categories=["user.contact"], recipients=["AdNetwork Ltd"])
    make("fulfilment", basis="contract", name_en="Order fulfilment", name_ja="商品の配送",
         categories=["user.behavior.purchase_history"], recipients=["ヤマト運輸"])
    make("research", basis="legitimate_interests", name_en="Health research", name_ja="健康研究",
         categories=["user.health_and_medical"], recipients=["Clinic Partner"])


def _setup(workspace, *, shop_url, crm_url, mailing_url, locale, jurisdiction):
    from consent.services import consent_record_for_profile
    from governance.datamap.services import datamap_load_text
    from governance.subjects.services import IdentityInput, profile_upsert

    _stores(shop_url, crm_url)
    datamap_load_text(text=DATAMAP.format(shop_url=shop_url, crm_url=crm_url, mailing_url=mailing_url),
                      filename="test-datamap.yaml", prune=True)
    _purposes()
    profile = profile_upsert(
        workspace=workspace, identities=[IdentityInput("email", EMAIL), IdentityInput("customer_id", "1", "shop")],
        attributes={"full_name": NAME}, locale=locale, jurisdiction=jurisdiction,
    ).profile
    consent_record_for_profile(profile=profile, purpose_code="newsletter", state="given", method="form")
    consent_record_for_profile(profile=profile, purpose_code="ads", state="refused", method="form")
    return profile


def _package(request) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(b"".join(package_stream(package=request.package))))
    return {name: archive.read(name) for name in archive.namelist()}


def _text_of(html: str) -> str:
    """The visible text of the summary (tags removed, entities kept escaped)."""
    return re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>|<title>.*?</title>", " ", html, flags=re.S))


def _run(workspace, mailoutbox, *, locale):
    request = submit_verified(workspace, mailoutbox, "access", email=EMAIL, locale=locale)
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    return request, _package(request)


def _check_package(files: dict[str, bytes], *, offset: str, local_created: str):
    html = files["summary.html"].decode("utf-8")
    # the person's own values are in the summary, HTML-escaped
    assert NAME in html and EMAIL in html and "1234.5" in html
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "注文 #10 について &amp; &lt;b&gt;急ぎ&lt;/b&gt;" in html
    # nobody else's
    assert "someone.else" not in html and "佐藤" not in html and "090-1111-2222" not in html
    # every link resolves to a file of the zip; every data file is linked
    links = set(re.findall(r'href="([^"#][^"]*)"', html))
    assert links and links <= set(files), links - set(files)
    assert {n for n in files if n.endswith((".json", ".csv")) and n != "manifest.json"} <= links
    assert "manifest.json" in links

    # JSON: ISO 8601 with the person's offset, numbers for amounts
    customers = json.loads(files["shop/customers.json"])
    assert customers == [{"id": 1, "email": EMAIL, "name": NAME, "phone": None, "note": HTMLISH,
                          "created_at": local_created, "birth_date": "1990-05-01"}]  # a date stays that day
    assert local_created.endswith(offset)
    assert dt.datetime.fromisoformat(local_created) == CREATED.replace(tzinfo=dt.UTC)
    orders = json.loads(files["shop/orders.json"])
    assert sorted(o["total"] for o in orders) == sorted(float(t) for t in TOTALS)
    assert all(isinstance(o["total"], int | float) for o in orders)
    assert json.loads(files["crm/tickets.json"])[0]["opened_at"].endswith(offset)
    # CSV: readable by spreadsheets (BOM), same values
    rows = list(csv.DictReader(io.StringIO(files["shop/customers.csv"].decode("utf-8-sig"))))
    assert rows[0]["name"] == NAME and rows[0]["created_at"] == local_created
    assert files["shop/customers.csv"].startswith("\ufeff".encode())

    # Art. 15: only what applies to this person
    info = json.loads(files["manifest.json"])["article_15"]
    assert sorted(p["code"] for p in info["purposes"]) == ["fulfilment", "newsletter"]
    assert {c["code"] for c in info["categories"]} == {
        "user.contact.email", "user.name", "user.content.private", "user.behavior.purchase_history",
        "user.unique_id", "user.behavior", "user.demographic.date_of_birth",  # Mamoru's own identities and consent of the person
    }
    assert sorted(r["name"] for r in info["recipients"]) == sorted(["配信代行株式会社", "ヤマト運輸"])
    assert {s["collection"] for s in info["sources"]} == {
        "shop.customers", "shop.orders", "crm.tickets", "mamoru.profile", "mamoru.identities", "mamoru.consent"}
    assert "AdNetwork Ltd" not in html and "Clinic Partner" not in html
    processing = html.split('<section id="processing">')[1].split("</section>")[0]
    for absent in ("Health research", "健康研究", "広告配信", "Personalised ads"):
        assert absent not in processing  # (the refusal itself is in the consent table: it is their data)
    sections = html.split("<h3>")
    recipients = next(s for s in sections if "配信代行株式会社" in s and "ヤマト運輸" in s)
    assert "Newsletter Processor GmbH" not in recipients  # no data of the person there
    return html


def _check_ja(html: str) -> None:
    text = _text_of(html)
    found = [label for label in ENGLISH_LABELS if label in text]
    assert found == [], f"English in the Japanese summary: {found}"
    assert 'lang="ja"' in html and "Asia/Tokyo" in html
    assert "メールマガジン" in html and "商品の配送" in html and "第6条1項(b) 契約" in html
    assert "7年" in html and "法令" in html  # retention and a legal basis written in English, in Japanese
    assert "2022年3月11日" in html  # created_at 00:00 UTC, shown in Japan's time


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_japanese_package_shows_the_persons_data_in_japanese(request, backend, workspaces, mailoutbox, mailing,  # noqa: F811
                                                            tmp_path):
    """GDPR Art. 15(1)(a)–(h) and (3), APPI 33条: the copy and the information that apply to the person."""
    shop_url = (request.getfixturevalue("postgres_url") if backend == "postgres"
                else f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    _app, mailing_url = mailing
    _setup(workspaces[0], shop_url=shop_url, crm_url=f"sqlite:///{tmp_path / 'crm.sqlite3'}",
           mailing_url=mailing_url, locale="ja", jurisdiction="JP")
    dsr, files = _run(workspaces[0], mailoutbox, locale="ja")
    html = _check_package(files, offset="+09:00", local_created="2022-03-11T09:00:00+09:00")
    _check_ja(html)
    assert "19.99" in html  # every order shown (below the cap)
    assert sorted(files) == sorted([
        "crm/tickets.csv", "crm/tickets.json", "mamoru/consent.csv", "mamoru/consent.json",
        "mamoru/identities.csv", "mamoru/identities.json", "mamoru/profile.csv", "mamoru/profile.json",
        "manifest.json", "shop/customers.csv", "shop/customers.json", "shop/orders.csv", "shop/orders.json",
        "summary.html",
    ])


def test_english_package_in_the_persons_zone_with_capped_tables(workspaces, mailoutbox, mailing,  # noqa: F811
                                                                  tmp_path, settings):
    """Large results: the summary shows the first rows of a collection and says where all of them are."""
    settings.MAMORU_DSR_PACKAGE_HTML_ROWS = 2
    _app, mailing_url = mailing
    _setup(workspaces[1], shop_url=f"sqlite:///{tmp_path / 'shop.sqlite3'}",
           crm_url=f"sqlite:///{tmp_path / 'crm.sqlite3'}", mailing_url=mailing_url, locale="en",
           jurisdiction="US-CA")
    dsr, files = _run(workspaces[1], mailoutbox, locale="en")
    html = _check_package(files, offset="-08:00", local_created="2022-03-10T16:00:00-08:00")
    assert 'lang="en"' in html and "America/Los_Angeles" in html
    assert "Only the first 2 of 3 records are shown here. All of them are in shop/orders.json and shop/orders.csv." in html
    section = html.split('id="shop-orders"')[1].split("</section>")[0]
    assert section.count("<tr>") == 1 + 2  # header and two rows
    assert "Tax law: invoices kept 7 years" in html and "7 years" in html
    assert "Newsletter" in html and "Order fulfilment" in html
    # a description in another language is replaced by the category's label
    assert "会員アカウント" not in html and "メールアドレス" not in html and "E-mail address" in html
