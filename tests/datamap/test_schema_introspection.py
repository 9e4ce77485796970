"""The data map against the live schema: names, types, lengths, NOT NULL, all problems at once.

Issue 12, finding 5: a default ``hash`` did not fit ``varchar(60)``; ``null`` on a NOT NULL column
failed mid-erasure; typos, wrong-case and missing tables loaded and "passed"; ``test_store`` on a
mistyped SQLite path created an empty file and said reachable.
"""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from django.core.management import call_command
from django.core.management.base import CommandError

from dsr.execution import run_inline
from dsr.models import RequestStatus
from governance.datamap.models import Field, Store
from governance.datamap.services import datamap_load_report, datamap_load_text
from governance.datamap.spec import DataMapInvalid
from tests.dsr.conftest import mariadb_url, postgres_url, redis_prefix, submit_verified  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

SUBJECT = "ana.silva@example.com"
SCHEMA = [
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, email VARCHAR(60) NOT NULL, "
    "name VARCHAR(60) NOT NULL, phone VARCHAR(20), born DATE)",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total NUMERIC(10, 2))",
]


def make_db(url: str) -> str:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in SCHEMA:
            conn.execute(sa.text(statement))
        conn.execute(sa.text("INSERT INTO customers (id, email, name, phone) VALUES "
                             f"(1, '{SUBJECT}', 'Ana Silva', '+81 90 1234 5678'), "
                             "(2, 'other.person@example.com', 'Other Person', NULL)"))
        conn.execute(sa.text("INSERT INTO orders (id, customer_id, total) VALUES (10, 1, 12.50)"))
    engine.dispose()
    return url


def datamap(url: str, customers: str, extra: str = "") -> str:
    return f"""\
version: 1
stores:
  crm:
    type: sql
    shared: true
    connection: {{url: "{url}"}}
    collections:
      customers:
        fields:
{customers}
{extra}"""


FITTING = """\
          id: {primary_key: true}
          email: {category: user.contact.email, identity: email, strategy: hash}
          name: {category: user.name, strategy: random_rewrite}
          phone: {category: user.contact.phone_number}
"""


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.fixture
def sqlite_url(tmp_path):
    return make_db(f"sqlite:///{tmp_path / 'crm.sqlite3'}")


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def any_url(request, tmp_path):
    if request.param == "sqlite":
        return make_db(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    from tests.servers import server_required

    server_required(request.param)  # fails instead of skipping with CI=true
    return make_db(request.getfixturevalue(f"{request.param}_url"))


def test_default_hash_fits_a_varchar_60_and_the_erasure_verifies(any_url, workspaces, mailoutbox):
    # given a map whose e-mail column is varchar(60), erased with the default hash (64 hex chars)
    report = datamap_load_report(text=datamap(any_url, FITTING), filename="map.yaml")
    assert report.warnings == []
    assert Field.objects.get(name="email").column["length"] == 60
    # when the person's erasure runs
    request = submit_verified(workspaces[0], mailoutbox, "erasure", email=SUBJECT)
    run_inline(request)
    request.refresh_from_db()
    # then it completes, and the stored pseudonym fits the column (PostgreSQL refused 64 chars;
    # SQLite silently stored them)
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    engine = sa.create_engine(any_url)
    with engine.connect() as conn:
        email, name = conn.execute(sa.text("SELECT email, name FROM customers WHERE id = 1")).one()
        other = conn.execute(sa.text("SELECT email FROM customers WHERE id = 2")).scalar_one()
    engine.dispose()
    assert email != SUBJECT and len(email) == 60 and name != "Ana Silva"
    assert other == "other.person@example.com"


def test_null_on_a_not_null_column_is_refused_at_load(any_url):
    # given a map that sets a NOT NULL column to null on erasure
    text = datamap(any_url, FITTING.replace("strategy: random_rewrite", 'strategy: "null"'))
    # when it is loaded, then the load refuses it (not the erasure, weeks later), with the line
    with pytest.raises(DataMapInvalid) as info:
        datamap_load_text(text=text, filename="map.yaml")
    [problem] = info.value.problems
    assert problem.line == line_of(text, "name:")
    assert "NOT NULL" in problem.message and "random_rewrite" in problem.message
    assert not Store.objects.exists()


def test_wrong_type_and_length_are_refused_with_the_fix(any_url):
    # given a hash longer than the column, a hash into an integer and a text rewrite into a date
    customers = FITTING.replace("strategy: hash}", "strategy: hash, strategy_options: {length: 64}}") + \
        "          born: {category: user.demographic.date_of_birth, strategy: random_rewrite}\n"
    extra = """\
      orders:
        fields:
          id: {primary_key: true}
          customer_id: {references: [crm.customers.id], category: user.unique_id, strategy: hash}
"""
    text = datamap(any_url, customers, extra)
    with pytest.raises(DataMapInvalid) as info:
        datamap_load_text(text=text, filename="map.yaml")
    rendered = str(info.value.detail)
    # then each is named with its line and what to write instead
    assert f"map.yaml:{line_of(text, 'email:')}:" in rendered and "{length: 60}" in rendered
    assert f"map.yaml:{line_of(text, 'born:')}:" in rendered and "date" in rendered
    assert f"map.yaml:{line_of(text, 'customer_id:')}:" in rendered and "random_rewrite" in rendered
    assert len(info.value.problems) == 3


@pytest.mark.postgres
def test_typo_wrong_case_and_missing_table_are_all_reported_at_once(postgres_url):  # noqa: F811
    # given a PostgreSQL database (unquoted names are folded to lower case) and a map with a
    # column typo, a table written in the wrong case, a missing table and a bad strategy option
    make_db(postgres_url)
    customers = """\
          id: {primary_key: true}
          emial: {category: user.contact.email, identity: email, strategy: hash}
          name: {category: user.name, strategy: hash, strategy_options: {lenght: 16}}
"""
    extra = """\
      Orders:
        fields:
          id: {primary_key: true}
          customer_id: {references: [crm.customers.id]}
          total: {category: user.financial, strategy: retain, legal_basis: tax law}
      invoices:
        fields:
          id: {primary_key: true}
          customer_id: {references: [crm.customers.id]}
"""
    text = datamap(postgres_url, customers, extra)
    # when it is loaded
    with pytest.raises(DataMapInvalid) as info:
        datamap_load_text(text=text, filename="map.yaml")
    # then every problem comes in one report, in file order, with its line and a suggested fix
    found = [(p.line, p.message) for p in info.value.problems]
    assert len(found) == 4, found
    assert found[0] == (line_of(text, "emial:"), "column 'emial' not found in table customers; "
                                                 "did you mean 'email'?")
    assert found[1] == (line_of(text, "lenght"), "hash: unknown option 'lenght'; did you mean 'length'?")
    assert found[2][0] == line_of(text, "Orders:")
    assert "'orders'" in found[2][1] and "{table: orders}" in found[2][1] and "PostgreSQL" in found[2][1]
    assert found[3][0] == line_of(text, "invoices:") and "table 'invoices' not found" in found[3][1]


def test_command_reports_every_problem_and_offline_skips_the_schema(sqlite_url, tmp_path):
    text = datamap(sqlite_url, FITTING.replace("email:", "emial:").replace("phone:", "phnoe:"))
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(CommandError) as info:
        call_command("load_datamap", str(path))
    message = str(info.value)
    assert f"{path}:{line_of(text, 'emial')}:" in message and "did you mean 'email'" in message
    assert f"{path}:{line_of(text, 'phnoe')}:" in message and "did you mean 'phone'" in message
    # --offline loads without looking (the user's choice, said in the output)
    out = io.StringIO()
    call_command("load_datamap", str(path), "--offline", stdout=out)
    assert "not checked" in out.getvalue() and Store.objects.filter(key="crm").exists()


def test_unreachable_store_is_a_warning_and_an_error_when_strict(tmp_path):
    # given a store nobody listens for
    text = datamap("postgresql+psycopg://nobody@127.0.0.1:1/none", FITTING)
    path = tmp_path / "map.yaml"
    path.write_text(text)
    # when loaded: a warning (the loading host may not reach every store), the map is loaded
    err = io.StringIO()
    call_command("load_datamap", str(path), stderr=err, stdout=io.StringIO())
    assert "warning: stores.crm: schema not checked" in err.getvalue()
    assert Store.objects.filter(key="crm").exists()
    # with --strict it is an error
    with pytest.raises(CommandError, match="schema not checked"):
        call_command("load_datamap", str(path), "--strict")


def test_strategy_options_are_validated_when_the_map_loads(tmp_path):
    customers = """\
          id: {primary_key: true}
          email: {category: user.contact.email, identity: email, strategy: hash, strategy_options: {length: 100}}
          name: {category: user.name, strategy: random_rewrite, strategy_options: {length: ten}}
          phone: {category: user.contact.phone_number, strategy: delete_row, strategy_options: {length: 8}}
"""
    text = datamap("sqlite:///unused.sqlite3", customers)
    with pytest.raises(DataMapInvalid) as info:
        datamap_load_text(text=text, filename="map.yaml", offline=True)
    found = {p.line: p.message for p in info.value.problems}
    assert "length: Input should be less than or equal to 64" in found[line_of(text, "email:")]
    assert "length: Input should be a valid integer" in found[line_of(text, "name:")]
    assert "unknown option 'length'; allowed: none" in found[line_of(text, "phone:")]


def test_test_store_on_a_missing_sqlite_file_fails_and_creates_nothing(tmp_path):
    # given a data map whose SQLite path has a typo (loaded offline)
    missing = tmp_path / "crm.sqltie3"
    datamap_load_text(text=datamap(f"sqlite:///{missing}", FITTING), filename="map.yaml", offline=True)
    # when test_store checks it, then it says the file is missing, and does not create it
    with pytest.raises(CommandError, match="does not exist"):
        call_command("test_store", "crm")
    assert not missing.exists()


def test_load_on_a_missing_sqlite_file_fails_and_creates_nothing(tmp_path):
    missing = tmp_path / "crm.sqltie3"
    with pytest.raises(DataMapInvalid, match="does not exist"):
        datamap_load_text(text=datamap(f"sqlite:///{missing}", FITTING), filename="map.yaml")
    assert not missing.exists()


def test_test_store_checks_the_live_schema(sqlite_url):
    datamap_load_text(text=datamap(sqlite_url, FITTING.replace("phone:", "phnoe:")), filename="map.yaml",
                      offline=True)
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 schema problem"):
        call_command("test_store", "crm", stderr=err)
    assert "did you mean 'phone'" in err.getvalue()
    # fixed, it passes
    datamap_load_text(text=datamap(sqlite_url, FITTING), filename="map.yaml")
    out = io.StringIO()
    call_command("test_store", "crm", stdout=out)
    assert "schema matches" in out.getvalue()


def test_reference_between_types_that_never_join_is_refused(sqlite_url):
    extra = """\
      orders:
        fields:
          id: {primary_key: true}
          customer_id: {references: [crm.customers.born]}
"""
    customers = FITTING + "          born: {category: user.demographic.date_of_birth, strategy: retain, " \
                          "legal_basis: kept}\n"
    text = datamap(sqlite_url, customers, extra)
    with pytest.raises(DataMapInvalid, match="never join") as info:
        datamap_load_text(text=text, filename="map.yaml")
    assert info.value.problems[0].line == line_of(text, "customer_id:")


def test_check_warns_about_stores_that_do_not_say_their_workspaces(tmp_path, workspaces):
    from django.core import checks

    from governance.datamap.checks import W001

    text = datamap(f"sqlite:///{tmp_path / 'x.sqlite3'}", FITTING).replace("    shared: true\n", "")
    datamap_load_text(text=text, filename="map.yaml", offline=True)
    found = [m for m in checks.run_checks(tags=[checks.Tags.database], databases=["default"]) if m.id == W001]
    assert len(found) == 1 and "'crm'" in found[0].msg


@pytest.mark.redis
def test_redis_keys_of_another_type_are_reported(redis_prefix):  # noqa: F811
    import redis

    from tests.servers import REDIS_URL

    client = redis.Redis.from_url(REDIS_URL)
    client.sadd(f"{redis_prefix}session:1", "a")  # a set, where the map says hash
    client.close()
    text = f"""\
version: 1
stores:
  cache:
    type: redis
    shared: true
    connection: {{url: "{REDIS_URL}"}}
    collections:
      sessions:
        options: {{type: hash, key: "{redis_prefix}session:{{customer_id}}"}}
        fields:
          customer_id: {{primary_key: true, identity: customer_id}}
          email: {{category: user.contact.email, strategy: delete_row}}
"""
    with pytest.raises(DataMapInvalid) as info:
        datamap_load_text(text=text, filename="map.yaml")
    [problem] = info.value.problems
    assert "of Redis type set, not hash; set options.type: set" in problem.message and problem.line == line_of(text, "options:")


def test_the_default_null_of_personal_data_on_a_not_null_column_is_named(sqlite_url):
    # given a personal field with no strategy (default: null) on a NOT NULL column
    text = datamap(sqlite_url, FITTING.replace("name: {category: user.name, strategy: random_rewrite}",
                                               "name: {category: user.name}"))
    with pytest.raises(DataMapInvalid) as info:
        datamap_load_text(text=text, filename="map.yaml")
    [problem] = info.value.problems
    assert problem.line == line_of(text, "name:")
    assert problem.message.startswith("null (the default for personal data; set a strategy): column name is NOT NULL")
