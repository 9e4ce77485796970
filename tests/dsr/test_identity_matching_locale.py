"""E-mail matching on PostgreSQL must not depend on the database's ctype (QA finding).

On a database created with ``LC_CTYPE 'C'`` (UTF8 encoding) ``lower()`` folds only ASCII:
``lower('ŁUKASZ.ŻÓŁĆ@WP.PL')`` is ``Łukasz.ŻÓŁĆ@wp.pl``, so the person's rows were silently missed
and the erasure "completed". The connector now compares in a collation that folds every script
(ICU's ``und-x-icu`` here); a server without one is refused when the map loads.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from dsr.connectors import StoreError, connector_class
from dsr.connectors.sql import engines_dispose
from dsr.execution import run_inline
from dsr.models import RequestStatus
from governance.datamap.services import datamap_load_text
from governance.datamap.spec import CollectionSpec, DataMapInvalid, FieldSpec
from tests.dsr.conftest import submit_verified
from tests.servers import POSTGRES_ADMIN_URL

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

SUBJECT = "łukasz.żółć@wp.pl"
ROWS = [
    (1, "ŁUKASZ.ŻÓŁĆ@WP.PL", "s"),
    (2, " Łukasz.Żółć@wp.pl", "s"),
    (3, "ŁUKASZ.ŻÓŁC@WP.PL", "o"),  # near miss: C, not Ć
    (4, "lukasz.zolc@wp.pl", "o"),  # near miss: the ASCII spelling is another mailbox
    (5, "someone.else@wp.pl", "o"),
]
# Dropping these leaves the server with no collation whose lower() folds beyond ASCII.
DROP_UNICODE_COLLATIONS = """
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.oid::regcollation AS name FROM pg_collation c
           WHERE c.collprovider = 'i' OR (c.collprovider = 'c' AND c.collctype NOT IN ('C', 'POSIX'))
  LOOP
    EXECUTE 'DROP COLLATION ' || r.name::text;
  END LOOP;
END $$
"""


@pytest.fixture
def c_ctype_url():
    """A throwaway PostgreSQL database with lc_ctype C (UTF8 encoding) and the people table."""
    name = f"mamoru_dsr_ctype_{uuid.uuid4().hex[:10]}"
    base = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://")
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE \"{name}\" LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0 "
                             "ENCODING 'UTF8'"))
    url = base.rsplit("/", 1)[0] + f"/{name}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR(80), note VARCHAR(40))"))
        conn.execute(sa.text("INSERT INTO people (id, email, note) VALUES (:id, :email, :note)"),
                     [{"id": i, "email": e, "note": f"note {i}"} for i, e, _ in ROWS])
        # precondition: this database's lower() is the ASCII-only one of the finding
        assert conn.execute(sa.text("SELECT lower('ŁUKASZ')")).scalar_one() == "Łukasz"
    engine.dispose()
    yield url
    engines_dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def people() -> CollectionSpec:
    return CollectionSpec(store="db", name="people", fields=[
        FieldSpec(name="id", primary_key=True),
        FieldSpec(name="email", category="user.contact.email", identity="email", strategy="hash"),
        FieldSpec(name="note", category="user.content", strategy="null"),
    ])


def whose(owner: str) -> list[int]:
    return [i for i, _, o in ROWS if o == owner]


def datamap(url: str) -> str:
    return f"""\
version: 1
stores:
  db:
    type: sql
    shared: true
    connection: {{url: "{url}"}}
    collections:
      people:
        fields:
          id: {{primary_key: true}}
          email: {{category: user.contact.email, identity: email, strategy: hash}}
          note: {{category: user.content, strategy: "null"}}
"""


def test_access_finds_non_ascii_capitals_on_a_c_ctype_database(c_ctype_url):
    connector = connector_class("sql")(store_key="db", settings={"url": c_ctype_url})
    found = sorted(r["id"] for r in connector.retrieve(people(), {"email": [SUBJECT]}))
    # both spellings of the person's address, not the near misses (the old code found none)
    assert found == whose("s")
    # the upper-case form as typed finds the same rows
    assert sorted(r["id"] for r in connector.retrieve(people(), {"email": ["ŁUKASZ.ŻÓŁĆ@WP.PL"]})) == whose("s")
    # ASCII addresses are found as before
    assert [r["id"] for r in connector.retrieve(people(), {"email": ["SOMEONE.ELSE@wp.pl"]})] == [5]


def test_erasure_on_a_c_ctype_database_erases_both_rows_and_verifies(c_ctype_url, workspaces, mailoutbox):
    datamap_load_text(text=datamap(c_ctype_url), filename="map.yaml")
    request = submit_verified(workspaces[0], mailoutbox, "erasure", email=SUBJECT)
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    engine = sa.create_engine(c_ctype_url)
    with engine.connect() as conn:
        notes = dict(conn.execute(sa.text("SELECT id, note FROM people")).all())
    engine.dispose()
    assert notes == {1: None, 2: None, 3: "note 3", 4: "note 4", 5: "note 5"}


def test_the_documented_index_serves_the_search(c_ctype_url):
    # given the index docs/datamap.md gives for a database with lc_ctype C
    engine = sa.create_engine(c_ctype_url)
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE INDEX people_email_ci ON people (lower(trim(email) COLLATE "und-x-icu"))'))
    statements: list[tuple[str, object]] = []

    def record(_conn, _cursor, sql, params, *_):
        statements.append((sql, params))

    connector = connector_class("sql")(store_key="db", settings={"url": c_ctype_url})
    sa.event.listen(connector.engine, "before_cursor_execute", record)
    try:
        assert sorted(r["id"] for r in connector.retrieve(people(), {"email": [SUBJECT]})) == whose("s")
    finally:
        sa.event.remove(connector.engine, "before_cursor_execute", record)
    [(sql, params)] = [s for s in statements if "FROM people" in s[0]]
    # then the search is the indexed expression, and the planner can use the index for it
    assert 'lower(trim(people.email) COLLATE "und-x-icu") IN' in sql
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params))
    engine.dispose()
    assert "people_email_ci" in plan, plan


def test_without_a_unicode_collation_the_map_is_refused_and_a_request_fails(c_ctype_url):
    # given a server where no collation folds beyond ASCII (ICU and UTF-8 libc collations gone)
    engine = sa.create_engine(c_ctype_url)
    with engine.begin() as conn:
        conn.execute(sa.text(DROP_UNICODE_COLLATIONS))
    engine.dispose()
    # when the map is loaded, then it is refused at the e-mail field, saying what to do
    text = datamap(c_ctype_url)
    with pytest.raises(DataMapInvalid) as info:
        datamap_load_text(text=text, filename="map.yaml")
    [problem] = info.value.problems
    name = c_ctype_url.rsplit("/", 1)[1]
    assert problem.path == "stores.db.collections.people.fields.email.identity"
    assert problem.message.startswith(f"database {name} has lc_ctype C: non-ASCII e-mails cannot be matched "
                                      "case-insensitively")
    assert "create the database with a UTF-8 locale" in problem.message and "install ICU" in problem.message
    # and a request (map loaded before the server changed) fails instead of missing the rows
    connector = connector_class("sql")(store_key="db", settings={"url": c_ctype_url})
    with pytest.raises(StoreError, match="has lc_ctype C: non-ASCII e-mails cannot be matched"):
        list(connector.retrieve(people(), {"email": [SUBJECT]}))
    # ASCII addresses are still searched (ASCII-only lower() is enough for them)
    assert [r["id"] for r in connector.retrieve(people(), {"email": ["Someone.Else@wp.pl"]})] == [5]


def test_a_column_declared_collate_c_in_a_utf8_database_is_matched_too(postgres_url):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR(80) COLLATE "C", '
                             "note VARCHAR(40))"))
        conn.execute(sa.text("INSERT INTO people (id, email, note) VALUES (:id, :email, 'n')"),
                     [{"id": i, "email": e} for i, e, _ in ROWS])
    engine.dispose()
    connector = connector_class("sql")(store_key="db", settings={"url": postgres_url})
    assert sorted(r["id"] for r in connector.retrieve(people(), {"email": [SUBJECT]})) == whose("s")
