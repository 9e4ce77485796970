"""Verification that cannot be fooled (issue 12, finding 3).

Once the e-mail is hashed, a search by identity finds nothing, whatever else is left in the row.
Verification re-reads by primary key every row the access phase found and compares keyed hashes
of the original values; a writer that refills name and phone after the erasure update — between
the nodes, or inside the store with a trigger — leaves the request needing attention, naming the
store, collection, field and row, never "completed".
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dsr.execution import fingerprint, run_inline
from dsr.models import RequestStatus, TaskStatus
from tests.dsr.conftest import SUBJECT_ID, build_stores, load_map, subject_profile, submit_verified

pytestmark = pytest.mark.django_db


def _subject(stores) -> dict:
    return next(c for c in stores.data["customers"] if c["id"] == SUBJECT_ID)


def _customer(stores) -> dict:
    return next(r for r in stores.rows("shop", "customers") if r["id"] == SUBJECT_ID)


def _pg_stores(postgres_url, mailing):
    return build_stores(shop_url=postgres_url, crm_url=postgres_url, mailing=mailing)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request, tmp_path, mailing):
    if request.param == "sqlite":
        return build_stores(shop_url=f"sqlite:///{tmp_path / 'shop.sqlite3'}",
                            crm_url=f"sqlite:///{tmp_path / 'crm.sqlite3'}", mailing=mailing)
    return _pg_stores(request.getfixturevalue("postgres_url"), mailing)


def _refill_trigger(stores, fields: tuple[str, ...]) -> None:
    """A writer inside the store: whenever the e-mail changes, the old values of ``fields`` come back."""
    engine = stores.engine("shop")
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            sets = ", ".join(f"{f} = OLD.{f}" for f in fields)
            conn.execute(sa.text(
                f"CREATE TRIGGER refill AFTER UPDATE OF email ON customers "
                f"BEGIN UPDATE customers SET {sets} WHERE id = NEW.id; END"))
        else:
            sets = " ".join(f"NEW.{f} := OLD.{f};" for f in fields)
            conn.execute(sa.text(
                f"CREATE FUNCTION refill() RETURNS trigger AS $$ BEGIN {sets} RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(sa.text("CREATE TRIGGER refill BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION refill()"))
    engine.dispose()


def _assert_names_leftover(request, stores, fields: tuple[str, ...]) -> None:
    request.refresh_from_db()
    assert request.status == RequestStatus.NEEDS_ATTENTION, request.status
    task = request.tasks.get(phase="verify", node="shop.customers")
    assert task.status == TaskStatus.FAILED
    reason = request.attention_reason
    for name in fields:
        assert f"store shop, collection customers, row id={SUBJECT_ID}, field {name}: still holds its original value" in reason
    leftovers = task.outcome["leftovers"]
    assert {(x["store"], x["collection"], x["field"], x["row"]) for x in leftovers} >= {
        ("shop", "customers", name, f"id={SUBJECT_ID}") for name in fields}
    # no personal value in the reason, the task row or the timeline
    person = _subject(stores)
    texts = [reason, str(task.outcome), task.error] + list(request.events.values_list("message", flat=True))
    for value in (person["name"], person["phone"], person["email"]):
        assert not any(value in text for text in texts)
    assert not request.events.filter(kind="completed").exists()


def test_writer_refilling_between_erasure_and_verification_is_caught(workspaces, mailoutbox, stores):
    # given a subject whose erasure ran up to the verification of the customers table
    load_map(stores, attempts=1, backoff=0.01)
    # the person is known by e-mail only: once it is hashed, no identity finds the row again
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request, stop_before={"verify:shop.customers"})
    assert _customer(stores)["email"] != _subject(stores)["email"]  # hashed: no longer found by identity
    # when another writer puts name and phone back after the erasure update
    person = _subject(stores)
    engine = stores.engine("shop")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE customers SET name = :n, phone = :p WHERE id = :i"),
                     {"n": person["name"], "p": person["phone"], "i": SUBJECT_ID})
    engine.dispose()
    run_inline(request)
    # then the request needs attention naming the store, collection, row and fields — not completed
    _assert_names_leftover(request, stores, ("name", "phone"))


def test_trigger_restoring_values_fails_verification(workspaces, mailoutbox, stores):
    """The store itself undoes the erasure update (old code: the hashed e-mail hid it → "completed")."""
    _refill_trigger(stores, ("name", "phone"))
    load_map(stores, attempts=1, backoff=0.01)
    # the person is known by e-mail only: once it is hashed, no identity finds the row again
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request)
    row = _customer(stores)
    assert row["email"] != _subject(stores)["email"] and row["name"] == _subject(stores)["name"]
    _assert_names_leftover(request, stores, ("name", "phone"))


def test_personal_field_without_strategy_is_checked(workspaces, mailoutbox, stores):
    """A personal field with no strategy is erased with null — and verified like any other."""
    from dsr import demo
    from governance.datamap.services import datamap_load_text

    text = demo.datamap_yaml(shop_url=stores.shop_url, crm_url=stores.crm_url, mailing_url=stores.mailing_url,
                             token="test-token", attempts=1, backoff=0.01)
    marker = "name: {category: user.name, strategy: random_rewrite}"
    assert marker in text
    datamap_load_text(text=text.replace(marker, "name: {category: user.name}"), filename="t.yaml", prune=True)
    _refill_trigger(stores, ("name",))
    # the person is known by e-mail only: once it is hashed, no identity finds the row again
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request)
    _assert_names_leftover(request, stores, ("name",))
    assert "name" in request.tasks.get(phase="verify", node="shop.customers").outcome["leftovers"][0]["field"]


def test_clean_erasure_verifies_by_key_and_completes(workspaces, mailoutbox, stores):
    load_map(stores, attempts=1, backoff=0.01)
    subject_profile(workspaces[0])
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    verify = request.tasks.get(phase="verify", node="shop.customers")
    assert verify.outcome["verified"] is True and verify.outcome["rows_reread"] == 1
    assert set(verify.outcome["checked_fields"]) >= {"email", "name", "phone", "address"}
    # the access phase kept keyed hashes of the original values, never the values
    access = request.tasks.get(phase="access", node="shop.customers")
    prints = access.outcome["fingerprints"][f"id={SUBJECT_ID}"]
    person = _subject(stores)
    assert set(prints) == {"email", "name", "phone", "address"}
    assert person["name"] not in str(access.outcome) and person["email"] not in str(access.outcome)
    assert all(len(v) == 32 for v in prints.values())


def test_row_of_the_subject_written_after_access_is_caught(workspaces, mailoutbox, stores):
    load_map(stores, attempts=1, backoff=0.01)
    subject_profile(workspaces[0])
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request, stop_before={"verify:shop.orders"})
    engine = stores.engine("shop")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO orders (id, customer_id, placed_at, total, shipping_address) "
                             "VALUES (99999, :c, '2025-09-09', 1, 'somewhere')"), {"c": SUBJECT_ID})
    engine.dispose()
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.NEEDS_ATTENTION
    assert "store shop, collection orders, row id=99999: a row matching the subject appeared" in request.attention_reason


def test_fingerprints_ignore_case_width_and_spaces():
    key = b"k" * 32
    assert fingerprint(key, " Subject.Person@Example.com ") == fingerprint(key, "subject.person@example.com")
    assert fingerprint(key, "０９０") == fingerprint(key, "090")
    assert fingerprint(key, None) is None and fingerprint(key, "  ") is None
    assert fingerprint(key, "a") != fingerprint(b"j" * 32, "a")


@pytest.mark.parametrize("read_endpoint", [False, True])
def test_http_rows_masked_in_place_need_a_read_endpoint_to_be_verified(workspaces, mailoutbox, sqlite_stores,
                                                                       read_endpoint):
    """A vendor API row whose e-mail is hashed can no longer be found by the lookup: without a
    ``read`` endpoint verification cannot tell masked from deleted, so it does not pass."""
    from dsr import demo
    from governance.datamap.services import datamap_load_text

    stores = sqlite_stores
    text = demo.datamap_yaml(shop_url=stores.shop_url, crm_url=stores.crm_url, mailing_url=stores.mailing_url,
                             token="test-token", attempts=1, backoff=0.01)
    deleted = "email: {category: user.contact.email, identity: email, strategy: delete_row}"
    head, _sep, tail = text.rpartition(deleted)  # the mailing list's members (the last one)
    text = head + "email: {category: user.contact.email, identity: email, strategy: hash}" + tail
    if read_endpoint:
        lookup = 'lookup: {path: /members, params: {email: "{email}"}, rows: data}'
        text = text.replace(lookup, lookup + '\n          read: {path: "/members/{id}", row: data}')
    datamap_load_text(text=text, filename="t.yaml", prune=True)
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request)
    request.refresh_from_db()
    member = next(m for m in stores.mailing.all_members() if m["id"] == SUBJECT_ID)
    assert member["email"] != "subject.person@example.com" and member["name"] is None  # masked in place
    if read_endpoint:
        assert request.status == RequestStatus.COMPLETED, request.attention_reason
    else:
        assert request.status == RequestStatus.NEEDS_ATTENTION
        assert (f"store mailing, collection members, row id={SUBJECT_ID}: cannot be read again by key"
                in request.attention_reason)


def test_identity_written_into_another_field_is_caught(workspaces, mailoutbox, sqlite_stores):
    """A writer copies the person's e-mail into a free-text field of the erased row."""
    stores = sqlite_stores
    load_map(stores, attempts=1, backoff=0.01)
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request, stop_before={"verify:shop.customers"})
    engine = stores.engine("shop")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE customers SET address = :a WHERE id = :i"),
                     {"a": " Subject.Person@example.com", "i": SUBJECT_ID})
    engine.dispose()
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.NEEDS_ATTENTION
    assert (f"store shop, collection customers, row id={SUBJECT_ID}, field address: holds one of the "
            "subject's identities") in request.attention_reason
