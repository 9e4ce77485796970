"""Identity matching as data really is (issue 12, findings 1 and 2).

Stores hold e-mails in mixed case, with surrounding spaces, with IDN domains in Unicode or
punycode, and phone numbers in national, international or full-width form. A request must find
exactly the subject's rows in every store type — and never a near miss.
"""

from __future__ import annotations

import io
import json
import random
import zipfile

import pytest
import sqlalchemy as sa
from django.test import TestCase

from dsr import demo
from dsr.connectors import connector_class
from dsr.connectors.sql import engines_dispose
from dsr.execution import inline_mode, run_inline
from dsr.masking import RowPlan
from dsr.models import RequestStatus
from dsr.package import package_stream
from governance.datamap.spec import CollectionSpec, DataMapInvalid, FieldSpec, datamap_parse
from governance.subjects.identities import (
    email_fold,
    email_search_forms,
    normalize_identity,
    phone_search_forms,
)
from tests.consent.conftest import _fresh_consent_caches, keys, purposes, server, site  # noqa: F401
from tests.dsr.conftest import code_from, load_map, submit_verified
from tests.servers import REDIS_URL

pytestmark = pytest.mark.django_db

SUBJECT_PHONE = "+819012345678"
# (id, email, phone, whose) — "s" rows are the subject's, "o" rows someone else's.
PEOPLE_ROWS = [
    (1, "FTremblay@Gmail.com", "090-1234-5678", "s"),
    (2, "  ftremblay@gmail.com ", "+81 90 1234 5678", "s"),
    (3, "FTREMBLAY@GMAIL.COM", "０９０１２３４５６７８", "s"),
    (4, "ftremblay@gmail.com.evil", "090-1234-5679", "o"),     # near misses
    (5, "xftremblay@gmail.com", "+81 90 1234 5677", "o"),
    (6, "Stanisław.Wójcik@WP.pl", "09012345678", "w"),          # Stanisław's (phone: subject's!)
    (7, "STANISŁAW.WÓJCIK@wp.pl", None, "w"),
    (8, "stanislaw.wojcik@wp.pl", None, "o"),                    # not the same mailbox
    (9, "taro@xn--r8jz45g.jp", None, "t"),
    (10, "Taro@例え.JP", None, "t"),
    (11, "taro@例え.jp.evil", None, "o"),
]


def people_collection(store: str = "db", phone_format: str = "") -> CollectionSpec:
    return CollectionSpec(store=store, name="people", fields=[
        FieldSpec("id", primary_key=True),
        FieldSpec("email", category="user.contact.email", identity="email"),
        FieldSpec("phone", category="user.contact.phone_number", identity="phone", format=phone_format),
    ])


def create_people(url: str) -> None:
    engine = sa.create_engine(url)
    table = sa.Table("people", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("email", sa.String(200)), sa.Column("phone", sa.String(40)))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, "email": e, "phone": p} for i, e, p, _w in PEOPLE_ROWS])
    engine.dispose()


def ids(rows) -> list[int]:
    return sorted(int(r["id"]) for r in rows)


def whose(*owners: str) -> list[int]:
    return sorted(i for i, _e, _p, w in PEOPLE_ROWS if w in owners)


# --- canonical forms --------------------------------------------------------------------------

def test_internationalised_addresses_have_one_canonical_form():
    assert normalize_identity(kind="email", value=" Stanisław.Wójcik@WP.pl ") == "stanisław.wójcik@wp.pl"
    # punycode and Unicode domains are one address (one blind index)
    assert normalize_identity(kind="email", value="Taro@XN--R8JZ45G.jp") == "taro@例え.jp"
    assert normalize_identity(kind="email", value="taro@例え.jp") == "taro@例え.jp"
    assert set(email_search_forms("taro@例え.jp")) == {"taro@例え.jp", "taro@xn--r8jz45g.jp"}
    for bad in ("stanisław..wójcik@wp.pl", "taro@", "@例え.jp", "taro@例え..jp", "a b@wp.pl"):
        with pytest.raises(Exception, match="valid e-mail"):
            normalize_identity(kind="email", value=bad)


def test_phone_forms_from_one_e164_seed():
    forms = set(phone_search_forms(SUBJECT_PHONE))
    assert {"+819012345678", "+81 90-1234-5678", "+81 90 1234 5678", "090-1234-5678", "09012345678",
            "０９０１２３４５６７８", "819012345678"} <= forms
    assert set(phone_search_forms(SUBJECT_PHONE, stored_format="national")) >= {"090-1234-5678", "09012345678"}
    assert "+819012345678" not in phone_search_forms(SUBJECT_PHONE, stored_format="national")


def test_phone_format_is_checked_when_the_map_loads():
    text = """
version: 1
stores:
  db:
    type: sql
    connection: {url: "sqlite://"}
    collections:
      people:
        fields:
          id: {primary_key: true}
          phone: {category: user.contact.phone_number, identity: phone, format: national}
          tel: {category: user.contact.phone_number, identity: phone, format: kanji}
"""
    with pytest.raises(DataMapInvalid) as caught:
        datamap_parse(text)
    messages = [p.message for p in caught.value.problems]
    assert any("format applies to phone identity fields" in m for m in messages)
    assert len([m for m in messages if "format" in m]) == 1  # 'national' is fine


# --- SQL stores -------------------------------------------------------------------------------

def check_sql_matching(url: str) -> None:
    create_people(url)
    connector = connector_class("sql")(store_key="db", settings={"url": url})
    collection = people_collection()
    try:
        # mixed case, surrounding spaces; not the .evil or x-prefixed near misses
        assert ids(connector.retrieve(collection, {"email": ["ftremblay@gmail.com"]})) == whose("s")
        # a non-ASCII local part in any case; not the accent-less address
        assert ids(connector.retrieve(collection, {"email": ["stanisław.wójcik@wp.pl"]})) == whose("w")
        # an IDN domain: the Unicode and the punycode form are the same address
        assert ids(connector.retrieve(collection, {"email": ["taro@例え.jp"]})) == whose("t")
        assert ids(connector.retrieve(collection, {"email": ["taro@xn--r8jz45g.jp"]})) == whose("t")
        # one E.164 seed finds the number in every format; not the neighbours' numbers
        assert ids(connector.retrieve(collection, {"phone": [SUBJECT_PHONE]})) == [1, 2, 3, 6]
        national = people_collection(phone_format="national")
        # a declared format narrows the search (full-width forms included): not +81 90 1234 5678
        assert ids(connector.retrieve(national, {"phone": [SUBJECT_PHONE]})) == [1, 3, 6]
        # erasure by key removes exactly the rows found
        rows = list(connector.retrieve(collection, {"email": ["ftremblay@gmail.com"]}))
        plans = [RowPlan(key={"id": r["id"]}, delete=True, values={}, original=r) for r in rows]
        assert connector.delete(collection, plans) == 3
        assert ids(connector.retrieve(collection, {"email": ["ftremblay@gmail.com"]})) == []
        assert ids(connector.retrieve(collection, {"email": ["ftremblay@gmail.com.evil"]})) == [4]
    finally:
        connector.close()
        engines_dispose()


def test_sql_matching_on_sqlite(tmp_path):
    check_sql_matching(f"sqlite:///{tmp_path / 'people.sqlite3'}")


@pytest.mark.postgres
def test_sql_matching_on_postgres(postgres_url):
    check_sql_matching(postgres_url)


@pytest.mark.mariadb
def test_sql_matching_on_mariadb(mariadb_url):
    """utf8mb4_general_ci compares accent-insensitively: the Python check drops the near miss."""
    check_sql_matching(mariadb_url)


# --- Redis ------------------------------------------------------------------------------------

@pytest.mark.redis
def test_redis_matching_in_keys_and_hash_fields(redis_prefix):
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    p = redis_prefix
    client.set(f"{p}nl:FTremblay@Gmail.com", "weekly")
    client.set(f"{p}nl:ftremblay@gmail.com.evil", "daily")
    client.set(f"{p}nl:taro@xn--r8jz45g.jp", "weekly")
    client.hset(f"{p}prefs:u1", mapping={"email": " FTremblay@Gmail.com ", "tel": "090-1234-5678"})
    client.hset(f"{p}prefs:u2", mapping={"email": "ftremblay@gmail.com.evil", "tel": "090-1234-5679"})
    client.set(f"{p}sms:+81 90-1234-5678", "on")
    client.set(f"{p}sms:090-1234-5679", "on")
    connector = connector_class("redis")(store_key="cache", settings={"url": REDIS_URL})
    newsletter = CollectionSpec(store="cache", name="nl", options={"type": "string", "key": p + "nl:{email}"},
                                fields=[FieldSpec("email", primary_key=True, identity="email", strategy="delete_row")])
    prefs = CollectionSpec(store="cache", name="prefs", options={"type": "hash", "key": p + "prefs:{uid}"},
                           fields=[FieldSpec("uid", primary_key=True), FieldSpec("email", identity="email"),
                                   FieldSpec("tel", identity="phone")])
    sms = CollectionSpec(store="cache", name="sms", options={"type": "string", "key": p + "sms:{tel}"},
                         fields=[FieldSpec("tel", primary_key=True, identity="phone")])
    try:
        found = list(connector.retrieve(newsletter, {"email": ["ftremblay@gmail.com"]}))
        assert [r["_key"] for r in found] == [f"{p}nl:FTremblay@Gmail.com"]
        assert [r["_key"] for r in connector.retrieve(newsletter, {"email": ["taro@例え.jp"]})] == [
            f"{p}nl:taro@xn--r8jz45g.jp"]
        assert [r["uid"] for r in connector.retrieve(prefs, {"email": ["ftremblay@gmail.com"]})] == ["u1"]
        assert [r["uid"] for r in connector.retrieve(prefs, {"tel": [SUBJECT_PHONE]})] == ["u1"]
        assert [r["_key"] for r in connector.retrieve(sms, {"tel": [SUBJECT_PHONE]})] == [f"{p}sms:+81 90-1234-5678"]
        # key_case: lower — the application lower-cases: keys are read directly, a mixed-case key is not
        lower = CollectionSpec(**{**newsletter.__dict__, "options": {**newsletter.options, "key_case": "lower"}})
        assert list(connector.retrieve(lower, {"email": ["ftremblay@gmail.com"]})) == []
        plans = [RowPlan(key={"email": r["email"]}, delete=True, values={}, original=r) for r in found]
        assert connector.delete(newsletter, plans) == 1
        assert not client.exists(f"{p}nl:FTremblay@Gmail.com") and client.exists(f"{p}nl:ftremblay@gmail.com.evil")
    finally:
        connector.close()
        client.close()


# --- HTTP -------------------------------------------------------------------------------------

def test_http_matching_sends_both_domain_forms_and_drops_loose_matches(mailing):
    app, url = mailing
    app.add_members([
        {"id": 1, "email": "taro@xn--r8jz45g.jp", "name": "Taro", "list_name": "l", "status": "s"},
        {"id": 2, "email": "FTremblay@Gmail.com", "name": "F", "list_name": "l", "status": "s"},
        {"id": 3, "email": "Stanisław.Wójcik@wp.pl", "name": "S", "list_name": "l", "status": "s"},
    ])
    collection = CollectionSpec(
        store="mailing", name="members",
        options={"lookup": {"path": "/members", "params": {"email": "{email}"}, "rows": "data"}},
        fields=[FieldSpec("id", primary_key=True), FieldSpec("email", identity="email")])
    connector = connector_class("http")(store_key="mailing", settings={"base_url": url, "token": "test-token",
                                                                             "allow_internal_hosts": True})
    try:
        assert ids(connector.retrieve(collection, {"email": ["taro@例え.jp"]})) == [1]
        assert ids(connector.retrieve(collection, {"email": ["ftremblay@gmail.com"]})) == [2]
        # the emulator folds ASCII only; 'exact' also sends the address as typed
        assert ids(connector.retrieve(collection, {"email": ["stanisław.wójcik@wp.pl"]})) == [3]
        exact = CollectionSpec(**{**collection.__dict__, "options": {**collection.options, "email_case": "exact"}})
        assert ids(connector.retrieve(exact, {"email": ["Stanisław.Wójcik@wp.pl", "stanisław.wójcik@wp.pl"]})) == [3]
    finally:
        connector.close()


# --- whole requests ---------------------------------------------------------------------------

# (as stored in the stores, as the person types it, a near miss, as stored in a ticket found only by e-mail)
SUBJECTS = {
    "mixed-case": ("FTremblay@Gmail.com", "ftremblay@gmail.com", "ftremblay@gmail.com.evil", " FTREMBLAY@gmail.com "),
    "non-ascii": ("Stanisław.Wójcik@WP.pl", "stanisław.wójcik@wp.pl", "stanislaw.wojcik@wp.pl",
                  " STANISŁAW.WÓJCIK@wp.pl "),
    "idn": ("taro@xn--r8jz45g.jp", "Taro@例え.jp", "taro@例え.jp.evil", " Taro@例え.JP "),
}


def build_mixed_case_stores(*, shop_url, crm_url, mailing, subject, redis_url=None, redis_prefix=""):
    """The demo dataset where customer 1's address is stored as the subject's stored form (and,
    in an extra ticket found only by e-mail, in another form); customer 2 is a near miss."""
    from tests.dsr.conftest import Stores

    stored, _typed, near_miss, in_ticket = SUBJECTS[subject]
    app, url = mailing
    rng = random.Random(3)
    people = [demo.person(i, rng) for i in range(1, 7)]
    people[0]["email"] = stored
    people[1]["email"] = near_miss
    shop, crm = sa.create_engine(shop_url), sa.create_engine(crm_url)
    demo.schemas_create(shop=shop, crm=crm)
    data = demo.dataset_rows(people, rng=random.Random(1))
    data["tickets"].append({"id": 999, "customer_ref": None, "email": in_ticket,
                            "subject": "Newsletter", "body": "Please unsubscribe me", "created_at": "2025-03-02"})
    client = None
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url, decode_responses=True)
    demo.dataset_write(data=data, shop=shop, crm=crm, mailing=app, redis_client=client, redis_prefix=redis_prefix)
    shop.dispose()
    crm.dispose()
    return Stores(shop_url=shop_url, crm_url=crm_url, mailing=app, mailing_url=url, redis_url=redis_url,
                  redis_prefix=redis_prefix, data=data)


def _package(request) -> dict[str, str]:
    archive = zipfile.ZipFile(io.BytesIO(b"".join(package_stream(package=request.package))))
    return {name: archive.read(name).decode("utf-8") for name in archive.namelist()}


def _rows(files: dict[str, str], name: str) -> list[dict]:
    return json.loads(files[name])


def _raw_emails(stores) -> list[str]:
    values = []
    for which, tables in (("shop", ("customers",)), ("crm", ("tickets",))):
        for table in tables:
            values += [r["email"] for r in stores.rows(which, table) if r["email"]]
    values += [m["email"] for m in stores.mailing.all_members() if m["email"]]
    if stores.redis_url:
        import redis

        client = redis.Redis.from_url(stores.redis_url, decode_responses=True)
        for key in client.scan_iter(match=stores.redis_prefix + "session:*"):
            values.append(client.hget(key, "email") or "")
        client.close()
    return values


def check_mixed_case_request(workspace, mailoutbox, stores, subject) -> None:
    _stored, typed, near_miss, _in_ticket = SUBJECTS[subject]
    load_map(stores)
    # access: the person types their address one way; the stores hold it in other forms
    request = submit_verified(workspace, mailoutbox, "access", email=typed)
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    files = _package(request)
    assert ids(_rows(files, "shop/customers.json")) == [1]
    assert ids(_rows(files, "crm/tickets.json")) == [10, 999]
    assert ids(_rows(files, "mailing/members.json")) == [1]
    if stores.redis_url:
        assert [r["customer_id"] for r in _rows(files, "sessions/sessions.json")] == ["1"]
    # erasure: nothing of the subject's address is left in any store; the near miss is untouched
    erasure = submit_verified(workspace, mailoutbox, "erasure", email=typed)
    run_inline(erasure)
    erasure.refresh_from_db()
    assert erasure.status == RequestStatus.COMPLETED, erasure.attention_reason
    emails = _raw_emails(stores)
    assert [e for e in emails if email_fold(e) == email_fold(typed)] == []
    assert near_miss in emails


@pytest.mark.parametrize("subject", sorted(SUBJECTS))
def test_mixed_case_address_found_and_erased_sqlite_http(workspaces, mailoutbox, tmp_path, mailing, subject):
    stores = build_mixed_case_stores(shop_url=f"sqlite:///{tmp_path / 'shop.sqlite3'}",
                                     crm_url=f"sqlite:///{tmp_path / 'crm.sqlite3'}", mailing=mailing,
                                     subject=subject)
    check_mixed_case_request(workspaces[1], mailoutbox, stores, subject)


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.redis
@pytest.mark.parametrize("subject", sorted(SUBJECTS))
def test_mixed_case_address_found_and_erased_on_servers(workspaces, mailoutbox, mailing, postgres_url,
                                                        mariadb_url, redis_prefix, subject):
    """Shop on PostgreSQL, CRM on MariaDB (accent-insensitive collation), sessions in Redis,
    mailing list over HTTP."""
    stores = build_mixed_case_stores(shop_url=postgres_url, crm_url=mariadb_url, mailing=mailing, subject=subject,
                                     redis_url=REDIS_URL, redis_prefix=redis_prefix)
    check_mixed_case_request(workspaces[0], mailoutbox, stores, subject)


# --- internationalised addresses file requests -------------------------------------------------

@pytest.mark.parametrize("email", ["stanisław.wójcik@wp.pl", "taro@例え.jp", "Taro@XN--R8JZ45G.jp"])
def test_api_accepts_internationalised_addresses(api_client, workspaces, mailoutbox, email):
    with inline_mode(), TestCase.captureOnCommitCallbacks(execute=True):
        response = api_client.post("/api/v1/dsr/requests", {"workspace": "shop-eu", "request_type": "access",
                                                            "email": email}, format="json")
    assert response.status_code == 201, response.json()
    assert len(mailoutbox) == 1 and code_from(mailoutbox)


def test_punycode_and_unicode_domains_find_the_same_profile(workspaces):
    from governance.subjects.selectors import profile_get_by_identity
    from governance.subjects.services import IdentityInput, profile_upsert

    profile = profile_upsert(workspace=workspaces[0], identities=[IdentityInput("email", "taro@xn--r8jz45g.jp")]).profile
    assert profile_get_by_identity(workspace=workspaces[0], kind="email", value="Taro@例え.jp") == profile
    again = profile_upsert(workspace=workspaces[0], identities=[IdentityInput("email", "taro@例え.jp")])
    assert again.profile == profile and not again.created


def test_consent_api_accepts_an_internationalised_identity(server):  # noqa: F811 - the fixture
    events = "/api/v1/consent/events"
    response = server.post(events, {"identity": {"kind": "email", "value": "Stanisław.Wójcik@wp.pl"},
                                    "purpose": "marketing_email", "state": "given", "method": "form",
                                    "language": "en"}, format="json")
    assert response.status_code == 201, response.content
    check = server.get("/api/v1/consent/check", {"identity_kind": "email", "identity_value": "STANISŁAW.WÓJCIK@wp.pl",
                                                 "purpose": "marketing_email"})
    assert check.status_code == 200 and check.json()["allowed"] is True, check.content


def test_profile_phone_finds_every_format_and_erasure_leaves_the_neighbour(workspaces, mailoutbox, tmp_path):
    """A profile's phone (E.164) erases the number stored national, international and full-width."""
    from governance.datamap.services import datamap_load_text
    from governance.subjects.services import IdentityInput, profile_upsert

    url = f"sqlite:///{tmp_path / 'sms.sqlite3'}"
    engine = sa.create_engine(url)
    table = sa.Table("contacts", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("phone", sa.String(40)), sa.Column("note", sa.String(100)))
    table.metadata.create_all(engine)
    stored = ["090-1234-5678", " +81 90 1234 5678", "０９０１２３４５６７８", "090-1234-5679", "+1 201-555-0123"]
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, "phone": p, "note": "n"} for i, p in enumerate(stored, start=1)])
    datamap_load_text(text=f"""
version: 1
stores:
  sms:
    type: sql
    connection: {{url: "{url}"}}
    collections:
      contacts:
        fields:
          id: {{primary_key: true}}
          phone: {{category: user.contact.phone_number, identity: phone, strategy: delete_row}}
          note: {{category: system.operations}}
""", filename="sms.yaml", prune=True)
    profile_upsert(workspace=workspaces[0], jurisdiction="JP", identities=[
        IdentityInput("email", "sms.person@example.jp"), IdentityInput("phone", "090-1234-5678")])
    access = submit_verified(workspaces[0], mailoutbox, "access", email="sms.person@example.jp")
    run_inline(access)
    access.refresh_from_db()
    assert access.status == RequestStatus.COMPLETED, access.attention_reason
    assert ids(_rows(_package(access), "sms/contacts.json")) == [1, 2, 3]
    erasure = submit_verified(workspaces[0], mailoutbox, "erasure", email="sms.person@example.jp")
    run_inline(erasure)
    erasure.refresh_from_db()
    assert erasure.status == RequestStatus.COMPLETED, erasure.attention_reason
    with engine.connect() as conn:
        left = [r.phone for r in conn.execute(sa.select(table.c.phone).order_by(table.c.id))]
    engine.dispose()
    engines_dispose()
    assert left == ["090-1234-5679", "+1 201-555-0123"]


# --- phone spellings as a CRM really holds them (issue 12 QA, finding 1) -----------------------

# +81 90-1234-5678 as people, IMEs and imports spell it (the QA table held it in 15 spellings)
SUBJECT_SPELLINGS = [
    "090-1234-5678", "+81 90-1234-5678", "０９０１２３４５６７８",
    "090ー1234ー5678",            # katakana prolonged sound mark (IME slip)
    "090−1234−5678",              # U+2212 minus sign
    "090‐1234‐5678", "090‑1234‑5678", "090‒1234‒5678", "090–1234–5678", "090—1234—5678",
    "090―1234―5678",              # U+2010 … U+2015
    "090－1234－5678",            # U+FF0D full-width hyphen-minus
    "+81 (0)90 1234 5678", "(090)1234-5678", "090.1234.5678", "81-90-1234-5678", "+81-90-1234-5678",
    "０９０ー１２３４ー５６７８", "（０９０）１２３４－５６７８", "＋８１　（０）９０　１２３４　５６７８",
    "＋８１－９０－１２３４－５６７８", "０９０．１２３４．５６７８", " 090ー1234ー5678 ",
]
# the neighbour's number (…5679) in the same spellings: never found
NEIGHBOUR_SPELLINGS = [s.replace("5678", "5679").replace("５６７８", "５６７９") for s in SUBJECT_SPELLINGS]


def test_phone_forms_cover_real_spellings_and_stay_bounded():
    from governance.subjects.identities import PHONE_FORMS_MAX, phone_fold, phone_region

    forms = set(phone_search_forms(SUBJECT_PHONE))
    assert [s for s in SUBJECT_SPELLINGS if s.strip() not in forms] == []
    assert not forms & {s.strip() for s in NEIGHBOUR_SPELLINGS}
    # each one confirms; the neighbour's never does
    assert {phone_fold(s, region="JP") for s in SUBJECT_SPELLINGS} == {SUBJECT_PHONE}
    assert SUBJECT_PHONE not in {phone_fold(s, region="JP") for s in NEIGHBOUR_SPELLINGS}
    assert "(201) 555-0123" in phone_search_forms("+12015550123")
    for number in (SUBJECT_PHONE, "+81312345678", "+12015550123", "+442079460958", "+4930123456", "+33123456789"):
        every = phone_search_forms(number)
        assert len(every) <= PHONE_FORMS_MAX
        assert {phone_fold(f, region=phone_region(number)) for f in every} == {number}


def check_phone_spellings(url: str) -> None:
    rows = [(i, s) for i, s in enumerate(SUBJECT_SPELLINGS + NEIGHBOUR_SPELLINGS, start=1)]
    engine = sa.create_engine(url)
    table = sa.Table("crm_contacts", sa.MetaData(),
                     sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), sa.Column("tel", sa.String(60)))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, "tel": s} for i, s in rows])
    engine.dispose()
    collection = CollectionSpec(store="crm", name="crm_contacts", fields=[
        FieldSpec("id", primary_key=True), FieldSpec("tel", identity="phone", strategy="delete_row")])
    connector = connector_class("sql")(store_key="crm", settings={"url": url})
    try:
        found = list(connector.retrieve(collection, {"tel": [SUBJECT_PHONE]}))
        assert sorted(r["tel"] for r in found) == sorted(SUBJECT_SPELLINGS)
        plans = [RowPlan(key={"id": r["id"]}, delete=True, values={}, original=r) for r in found]
        assert connector.delete(collection, plans) == len(SUBJECT_SPELLINGS)
        assert list(connector.retrieve(collection, {"tel": [SUBJECT_PHONE]})) == []
        assert len(list(connector.retrieve(collection, {"tel": ["+819012345679"]}))) == len(NEIGHBOUR_SPELLINGS)
    finally:
        connector.close()
        engines_dispose()


def test_phone_spellings_found_and_erased_on_sqlite(tmp_path):
    check_phone_spellings(f"sqlite:///{tmp_path / 'crm.sqlite3'}")


@pytest.mark.postgres
def test_phone_spellings_found_and_erased_on_postgres(postgres_url):
    check_phone_spellings(postgres_url)


@pytest.mark.mariadb
def test_phone_spellings_found_and_erased_on_mariadb(mariadb_url):
    check_phone_spellings(mariadb_url)


@pytest.mark.redis
def test_phone_spellings_in_redis_keys_and_hash_fields(redis_prefix):
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    p = redis_prefix
    for i, spelling in enumerate(SUBJECT_SPELLINGS + NEIGHBOUR_SPELLINGS):
        client.hset(f"{p}prefs:u{i}", mapping={"tel": spelling})
        if spelling == spelling.strip():
            client.set(f"{p}sms:{spelling}", "on")
    connector = connector_class("redis")(store_key="cache", settings={"url": REDIS_URL})
    prefs = CollectionSpec(store="cache", name="prefs", options={"type": "hash", "key": p + "prefs:{uid}"},
                           fields=[FieldSpec("uid", primary_key=True), FieldSpec("tel", identity="phone")])
    sms = CollectionSpec(store="cache", name="sms", options={"type": "string", "key": p + "sms:{tel}"},
                         fields=[FieldSpec("tel", primary_key=True, identity="phone")])
    try:
        assert sorted(r["tel"] for r in connector.retrieve(prefs, {"tel": [SUBJECT_PHONE]})) == sorted(SUBJECT_SPELLINGS)
        assert sorted(r["tel"] for r in connector.retrieve(sms, {"tel": [SUBJECT_PHONE]})) == sorted(
            s for s in SUBJECT_SPELLINGS if s == s.strip())
    finally:
        connector.close()
        client.close()


def test_profile_phone_erasure_removes_every_spelling(workspaces, mailoutbox, tmp_path):
    """The QA case as a whole request: a 'completed' erasure leaves no spelling of the number."""
    from governance.datamap.services import datamap_load_text
    from governance.subjects.services import IdentityInput, profile_upsert

    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    engine = sa.create_engine(url)
    table = sa.Table("contacts", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("phone", sa.String(60)))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, "phone": p} for i, p in
                                      enumerate(SUBJECT_SPELLINGS + NEIGHBOUR_SPELLINGS, start=1)])
    datamap_load_text(text=f"""
version: 1
stores:
  crm:
    type: sql
    connection: {{url: "{url}"}}
    collections:
      contacts:
        fields:
          id: {{primary_key: true}}
          phone: {{category: user.contact.phone_number, identity: phone, strategy: delete_row}}
""", filename="crm.yaml", prune=True)
    profile_upsert(workspace=workspaces[0], jurisdiction="JP", identities=[
        IdentityInput("email", "mika.ota@example.jp"), IdentityInput("phone", "+81 90-1234-5678")])
    erasure = submit_verified(workspaces[0], mailoutbox, "erasure", email="mika.ota@example.jp")
    run_inline(erasure)
    erasure.refresh_from_db()
    assert erasure.status == RequestStatus.COMPLETED, erasure.attention_reason
    with engine.connect() as conn:
        left = [r.phone for r in conn.execute(sa.select(table.c.phone).order_by(table.c.id))]
    engine.dispose()
    engines_dispose()
    assert left == NEIGHBOUR_SPELLINGS


# --- Redis keys with surrounding spaces (issue 12 QA, finding 2) -------------------------------

@pytest.mark.redis
def test_redis_email_key_with_surrounding_spaces_is_found(redis_prefix):
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    p = redis_prefix
    subject = [f"{p}cart:mika.ota@例え.jp ", f"{p}cart: Mika.Ota@例え.jp", f"{p}cart:\tMIKA.OTA@xn--r8jz45g.jp  ",
               f"{p}cart:Mika.Ota@XN--R8JZ45G.jp", f"{p}cart:mika.ota@例え.jp", f"{p}cart:mika.ota@例え.jp\n"]
    others = [f"{p}cart:mika.ota@例え.jp.evil ", f"{p}cart: xmika.ota@例え.jp", f"{p}cart:mika.ota@例え.jp x",
              f"{p}cart:mika ota@例え.jp", f"{p}carts:mika.ota@例え.jp"]
    for key in subject + others:
        client.set(key, "3 items")
    connector = connector_class("redis")(store_key="cache", settings={"url": REDIS_URL})
    cart = CollectionSpec(store="cache", name="cart", options={"type": "string", "key": p + "cart:{email}"},
                          fields=[FieldSpec("email", primary_key=True, identity="email", strategy="delete_row")])
    try:
        found = list(connector.retrieve(cart, {"email": ["mika.ota@例え.jp"]}))
        assert sorted(r["_key"] for r in found) == sorted(subject)
        plans = [RowPlan(key={"email": r["email"]}, delete=True, values={}, original=r) for r in found]
        assert connector.delete(cart, plans) == len(subject)
        assert sorted(k for k in client.scan_iter(match=p + "*")) == sorted(others)
    finally:
        connector.close()
        client.close()
