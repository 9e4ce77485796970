"""Verification checks the erased value, and retry re-runs an erasure whose data came back.

QA, high: verification only checked that a field no longer held its original value. A PostgreSQL
BEFORE UPDATE trigger that writes the same phone number reformatted, and fills a fax column that
was empty when the data was read, left both numbers in the row of a "completed" erasure. Now each
personal field that is not retained must hold what the erasure planned for it (NULL, or the value
computed again from the original; keyed hashes compared), and an e-mail or phone written
differently is still itself.

QA, medium: once verification found data left, "Retry failed nodes" re-ran only the verification;
the erasure stayed done and the request failed again forever. A retry now runs that node's erasure
again (idempotent: from the access originals), then verifies.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from django.test import TestCase

from dsr import demo
from dsr.execution import inline_mode, run_inline
from dsr.models import RequestStatus, TaskStatus
from dsr.services import dsr_request_retry
from governance.datamap.services import datamap_load_text
from tests.dsr.conftest import SUBJECT_ID, build_stores, submit_verified

pytestmark = pytest.mark.django_db

PHONE_LINE = 'phone: {category: user.contact.phone_number, strategy: "null"}'
FAX_LINE = '\n          fax: {category: user.contact.phone_number, strategy: "null"}'


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request, tmp_path, mailing):
    if request.param == "sqlite":
        return build_stores(shop_url=f"sqlite:///{tmp_path / 'shop.sqlite3'}",
                            crm_url=f"sqlite:///{tmp_path / 'crm.sqlite3'}", mailing=mailing)
    url = request.getfixturevalue("postgres_url")
    return build_stores(shop_url=url, crm_url=url, mailing=mailing)


def _person(stores) -> dict:
    return next(c for c in stores.data["customers"] if c["id"] == SUBJECT_ID)


def _customer(stores) -> dict:
    return next(r for r in stores.rows("shop", "customers") if r["id"] == SUBJECT_ID)


def _load_map_with_fax(stores) -> None:
    """The demo map, and a ``fax`` column (empty for everybody) erased with null."""
    engine = stores.engine("shop")
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE customers ADD COLUMN fax VARCHAR(60)"))
    engine.dispose()
    text = demo.datamap_yaml(shop_url=stores.shop_url, crm_url=stores.crm_url, mailing_url=stores.mailing_url,
                             token="test-token", attempts=1, backoff=0.01)
    assert PHONE_LINE in text
    datamap_load_text(text=text.replace(PHONE_LINE, PHONE_LINE + FAX_LINE), filename="t.yaml", prune=True)


def _trigger(stores, name: str, sets: dict[str, str]) -> None:
    """A writer inside the store: whenever the subject's row is updated, ``sets`` are written."""
    engine = stores.engine("shop")
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            assignments = ", ".join(f"{column} = {value}" for column, value in sets.items())
            conn.execute(sa.text(f"CREATE TRIGGER {name} AFTER UPDATE OF email ON customers "
                                 f"BEGIN UPDATE customers SET {assignments} WHERE id = NEW.id; END"))
        else:
            assignments = " ".join(f"NEW.{column} := {value};" for column, value in sets.items())
            conn.execute(sa.text(f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN {assignments} "
                                 "RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(sa.text(f"CREATE TRIGGER {name} BEFORE UPDATE ON customers FOR EACH ROW "
                                 f"EXECUTE FUNCTION {name}()"))
    engine.dispose()


def _drop_trigger(stores, name: str) -> None:
    engine = stores.engine("shop")
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TRIGGER {name}" if engine.dialect.name == "sqlite"
                             else f"DROP TRIGGER {name} ON customers"))
    engine.dispose()


def _needs_attention(request, problems: dict[str, str], secrets: list[str]) -> None:
    request.refresh_from_db()
    assert request.status == RequestStatus.NEEDS_ATTENTION, request.status
    task = request.tasks.get(phase="verify", node="shop.customers")
    assert task.status == TaskStatus.FAILED
    for field, problem in problems.items():
        assert (f"store shop, collection customers, row id={SUBJECT_ID}, field {field}: {problem}"
                in request.attention_reason), request.attention_reason
    assert {(x["field"], x["problem"]) for x in task.outcome["leftovers"]} >= set(problems.items())
    texts = [request.attention_reason, str(task.outcome), task.error]
    texts += list(request.events.values_list("message", flat=True))
    texts += [str(d) for d in request.events.values_list("data", flat=True)]
    for secret in secrets:
        assert not any(secret in text for text in texts), secret
    assert not request.events.filter(kind="completed").exists()


def test_reformatted_phone_and_filled_fax_are_left_over(workspaces, mailoutbox, stores):
    """The QA repro: same number reformatted, and a fax (empty when read) filled by a trigger."""
    person = _person(stores)
    assert person["phone"] == "+819000000001"
    reformatted, fax = "090.0000.0001", "+81 90 0000 0001 ext. 2"
    _load_map_with_fax(stores)
    _trigger(stores, "reformat", {"phone": f"'{reformatted}'", "fax": f"'{fax}'"})
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request)
    # the row still holds the number twice (old code: "verification found nothing left", completed)
    row = _customer(stores)
    assert (row["phone"], row["fax"]) == (reformatted, fax) and row["email"] != person["email"]
    _needs_attention(request, {"phone": "still holds its original value (written differently)",
                               "fax": "holds one of the subject's identities"},
                     [reformatted, fax, person["phone"], "9000000001", person["email"], person["name"]])


def test_field_not_holding_the_planned_value_is_left_over(workspaces, mailoutbox, stores):
    """A rewrite replaced by another text, a nulled field given a value, an empty field filled."""
    _load_map_with_fax(stores)
    _trigger(stores, "overwrite", {"name": "'Someone Else'", "address": "'Elsewhere 1'", "fax": "'see notes'"})
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request)
    assert _customer(stores)["name"] == "Someone Else"
    person = _person(stores)
    _needs_attention(request, {"name": "does not hold the value the erasure wrote",
                               "address": "holds a value where the erasure wrote null",
                               "fax": "was empty when read and now holds a value (it must stay empty)"},
                     ["Someone Else", "Elsewhere 1", "see notes", person["email"], person["name"]])


def test_clean_erasure_with_an_empty_field_completes(workspaces, mailoutbox, stores):
    _load_map_with_fax(stores)
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    verify = request.tasks.get(phase="verify", node="shop.customers")
    assert {"fax", "name", "phone"} <= set(verify.outcome["checked_fields"])


def test_retry_after_removing_the_cause_erases_again_and_completes(workspaces, mailoutbox, stores):
    """Trigger refills the name → needs attention; trigger dropped; retry → completed, store clean."""
    _load_map_with_fax(stores)
    person = _person(stores)
    _trigger(stores, "refill", {"name": "OLD.name"})
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request)
    assert _customer(stores)["name"] == person["name"]
    _needs_attention(request, {"name": "still holds its original value"}, [person["name"], person["email"]])
    # when the cause is removed and staff use "Retry failed nodes"
    _drop_trigger(stores, "refill")
    with inline_mode(), TestCase.captureOnCommitCallbacks(execute=True):
        dsr_request_retry(request=request, actor=None)
    run_inline(request)
    request.refresh_from_db()
    # then the erasure of that node ran again, verification passed and the store is clean
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    row = _customer(stores)
    assert row["name"] != person["name"] and row["email"] != person["email"]
    assert row["phone"] is None and row["address"] is None and row["fax"] is None
    verify = request.tasks.get(phase="verify", node="shop.customers")
    assert verify.status == TaskStatus.DONE and verify.outcome["verified"] is True
    # the originals were not read again (they would be the masked values by now)
    assert request.tasks.get(phase="access", node="shop.customers").attempts == 1
    # and the timeline says why the erasure ran again
    event = request.events.get(kind="erase_again")
    assert event.data["nodes"] == ["shop.customers"] and "runs again" in event.message
    assert "erasure:shop.customers" in request.events.filter(kind="retried").last().data["nodes"]


@pytest.mark.parametrize(("kind", "value", "identity", "same"), [
    ("phone", "514.721.4711", "+1 (514) 721-4711", True),
    ("phone", "+1 514 721 4711 ext. 2", "514-721-4711", True),
    ("phone", "090.0000.0001", "+819000000001", True),
    ("phone", "０９０－００００－０００１", "+819000000001", True),
    ("phone", "514.721.4712", "+1 (514) 721-4711", False),
    ("phone", "Order 5147214711 shipped", "+1 (514) 721-4711", False),
    ("email", " Subject.Person@EXAMPLE.com", "subject.person@example.com", True),
    ("email", "other.person@example.com", "subject.person@example.com", False),
])
def test_identity_written_differently_is_the_identity(kind, value, identity, same):
    from dsr.execution import _same_identity

    assert _same_identity(kind, value, identity) is same
