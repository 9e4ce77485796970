"""Workspaces own their stores: a brand's request searches that brand's stores (and shared ones);
a request that covers every workspace searches all of them, with each brand's profile.

Issue 12, finding 7: the data map was global, so a deletion filed for the wrong brand "completed"
while the person's profile in the other brand stayed.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from django.core import mail

from dsr.execution import run_inline
from dsr.models import RequestStatus
from governance.datamap.services import datamap_load_report, datamap_load_text
from governance.datamap.spec import DataMapInvalid
from governance.subjects.models import ProfileStatus
from tests.dsr.conftest import submit_verified

pytestmark = pytest.mark.django_db

PERSON = "hana.ito@example.com"
OTHER = "someone.else@example.com"
MEMBER_NO = 777
TAX = "Tax law: invoices kept 7 years"


def brand_map(tmp_path, *, jp_scope: str = "workspaces: [shop-jp]", eu_scope: str = "workspaces: [shop-eu]",
              extra: str = "") -> str:
    return f"""\
version: 1
stores:
  jp_shop:
    type: sql
    name: Shop JP customer database
    {jp_scope}
    connection: {{url: "sqlite:///{tmp_path / 'jp.sqlite3'}"}}
    collections:
      members:
        fields:
          id: {{primary_key: true}}
          email: {{category: user.contact.email, identity: email, strategy: hash}}
          name: {{category: user.name, strategy: random_rewrite}}
  eu_shop:
    type: sql
    name: Shop EU customer database
    {eu_scope}
    connection: {{url: "sqlite:///{tmp_path / 'eu.sqlite3'}"}}
    collections:
      accounts:
        fields:
          id: {{primary_key: true}}
          email: {{category: user.contact.email, identity: email, strategy: hash}}
          name: {{category: user.name, strategy: random_rewrite}}
      loyalty:
        fields:
          id: {{primary_key: true}}
          member_no: {{identity: customer_id, namespace: eu-shop}}
          nickname: {{category: user.name, strategy: "null"}}
      invoices:
        fields:
          id: {{primary_key: true}}
          account_id: {{references: [eu_shop.accounts.id]}}
          total: {{category: user.financial, strategy: retain, legal_basis: "{TAX}", retention: 7 years}}
{extra}"""


def brand_stores(tmp_path) -> dict[str, str]:
    """Two brands' databases, each holding the person (EU also by loyalty member number)."""
    urls = {"jp": f"sqlite:///{tmp_path / 'jp.sqlite3'}", "eu": f"sqlite:///{tmp_path / 'eu.sqlite3'}"}
    statements = {
        "jp": ["CREATE TABLE members (id INTEGER PRIMARY KEY, email VARCHAR(200), name VARCHAR(200))",
               f"INSERT INTO members VALUES (1, '{PERSON}', 'Hana Ito'), (2, '{OTHER}', 'Some One')"],
        "eu": ["CREATE TABLE accounts (id INTEGER PRIMARY KEY, email VARCHAR(200), name VARCHAR(200))",
               "CREATE TABLE loyalty (id INTEGER PRIMARY KEY, member_no INTEGER, nickname VARCHAR(50))",
               "CREATE TABLE invoices (id INTEGER PRIMARY KEY, account_id INTEGER, total NUMERIC(10, 2))",
               f"INSERT INTO accounts VALUES (5, '{PERSON}', 'Hana Ito'), (6, '{OTHER}', 'Some One')",
               f"INSERT INTO loyalty VALUES (1, {MEMBER_NO}, 'hana-chan'), (2, 1, 'other')",
               "INSERT INTO invoices VALUES (50, 5, 19.90)"],
    }
    for which, url in urls.items():
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for statement in statements[which]:
                conn.execute(sa.text(statement))
        engine.dispose()
    return urls


def brand_profiles(workspaces):
    from governance.subjects.services import IdentityInput, profile_upsert

    jp, eu = workspaces
    return (
        profile_upsert(workspace=jp, identities=[IdentityInput("email", PERSON)],
                       attributes={"full_name": "Hana Ito"}).profile,
        profile_upsert(workspace=eu, identities=[IdentityInput("email", PERSON),
                                                 IdentityInput("customer_id", str(MEMBER_NO), "eu-shop")],
                       attributes={"full_name": "Hana Ito"}).profile,
    )


def raw(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text(sql))]
    engine.dispose()
    return rows


def person_left(urls: dict[str, str]) -> dict[str, bool]:
    """Whether the person's e-mail (or EU loyalty nickname) is still in each brand's database."""
    return {
        "jp": bool(raw(urls["jp"], f"SELECT 1 FROM members WHERE email = '{PERSON}'")),
        "eu": bool(raw(urls["eu"], f"SELECT 1 FROM accounts WHERE email = '{PERSON}'")),
        "eu_loyalty": raw(urls["eu"], f"SELECT nickname FROM loyalty WHERE member_no = {MEMBER_NO}")
        != [(None,)],
    }


@pytest.fixture
def brands(tmp_path, workspaces):
    urls = brand_stores(tmp_path)
    report = datamap_load_report(text=brand_map(tmp_path), filename="brands.yaml")
    assert report.warnings == []
    return urls


def test_a_brand_request_erases_that_brand_only_and_says_so(brands, workspaces, mailoutbox,
                                                           django_capture_on_commit_callbacks):
    jp_profile, eu_profile = brand_profiles(workspaces)
    # when the person asks Shop JP to delete their data
    request = submit_verified(workspaces[0], mailoutbox, "erasure", email=PERSON)
    with django_capture_on_commit_callbacks(execute=True):
        run_inline(request)
    request.refresh_from_db()
    # then Shop JP's store is erased, Shop EU's was not searched, and the mail says what was covered
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    assert {s["key"] for s in request.plan["stores"]} == {"jp_shop", "mamoru"}
    assert person_left(brands) == {"jp": False, "eu": True, "eu_loyalty": True}
    jp_profile.refresh_from_db()
    eu_profile.refresh_from_db()
    assert jp_profile.status == ProfileStatus.SHREDDED and eu_profile.status == ProfileStatus.ACTIVE
    final = mailoutbox[-1].body
    assert "This request covered only: Shop JP" in final
    assert "Not covered: Shop EU" in final
    assert "Systems searched: Shop JP customer database" in final and "Shop EU customer database" not in final


def test_a_request_for_every_workspace_erases_every_brand_with_each_profile(
        brands, workspaces, mailoutbox, django_capture_on_commit_callbacks):
    jp_profile, eu_profile = brand_profiles(workspaces)
    # when the person files without choosing a brand (the request's workspace is only the default)
    request = submit_verified(workspaces[0], mailoutbox, "erasure", email=PERSON, all_workspaces=True)
    with django_capture_on_commit_callbacks(execute=True):
        run_inline(request)
    request.refresh_from_db()
    # then both brands' stores are erased — the EU loyalty row too, found through the EU profile's
    # member number — and both profiles are shredded
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    assert person_left(brands) == {"jp": False, "eu": False, "eu_loyalty": False}
    assert raw(brands["jp"], f"SELECT email FROM members WHERE email = '{OTHER}'")  # others untouched
    jp_profile.refresh_from_db()
    eu_profile.refresh_from_db()
    assert jp_profile.status == eu_profile.status == ProfileStatus.SHREDDED
    final = mailoutbox[-1].body
    assert "This request covered all our services: Shop EU, Shop JP" in final
    assert "Not covered" not in final
    assert f"Shop EU customer database (invoices: total): {TAX} (7 years)" in final


def test_shared_stores_are_searched_for_every_workspace(tmp_path, workspaces, mailoutbox):
    urls = brand_stores(tmp_path)
    datamap_load_text(text=brand_map(tmp_path, jp_scope="shared: true"), filename="brands.yaml")
    request = submit_verified(workspaces[1], mailoutbox, "erasure", email=PERSON)
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    assert person_left(urls) == {"jp": False, "eu": False, "eu_loyalty": True}  # EU profile: none


def test_a_store_without_owner_is_shared_with_a_warning(tmp_path, workspaces):
    brand_stores(tmp_path)
    report = datamap_load_report(text=brand_map(tmp_path, jp_scope=""), filename="brands.yaml")
    [warning] = report.warnings
    assert warning.path == "stores.jp_shop" and "every workspace" in warning.message and warning.line == 3


def test_workspace_mistakes_are_refused_at_load(tmp_path, workspaces):
    brand_stores(tmp_path)
    # a misspelt workspace, and a JP store reading from a store only EU owns
    extra = """\
  jp_points:
    type: sql
    workspaces: [shop-jp]
    connection: {url: "sqlite:///%s"}
    collections:
      points:
        fields:
          id: {primary_key: true}
          account_id: {references: [eu_shop.accounts.id]}
""" % (tmp_path / "eu.sqlite3")
    text = brand_map(tmp_path, eu_scope="workspaces: [shop-ue]", extra=extra)
    with pytest.raises(DataMapInvalid) as info:
        datamap_load_text(text=text, filename="brands.yaml", offline=True)
    messages = [p.message for p in info.value.problems]
    assert any("no workspace 'shop-ue'; did you mean 'shop-eu'?" in m for m in messages), messages
    assert any("'eu_shop' is owned by shop-ue but 'jp_points' is also searched for shop-jp" in m
               for m in messages), messages
    assert not mail.outbox
