"""The data map's row keys and its YAML keys, checked against reality.

QA findings: (1) a ``primary_key`` declared on a column that is not unique in the table
(``reviews.track_id``) loaded without a word, and erasing one reviewer set another person's review
to NULL — found 1 row, changed 2, "completed"; (2) a duplicate YAML key (a second ``Email:`` under
a collection) silently replaced the identity field and the map loaded.
"""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from django.core.management import call_command
from django.core.management.base import CommandError

from dsr.execution import run_inline
from dsr.models import RequestStatus, RequestTask, TaskPhase
from governance.datamap.models import Field, Store
from governance.datamap.services import datamap_load_report, datamap_load_text
from governance.datamap.spec import DataMapInvalid
from tests.dsr.conftest import mariadb_url, postgres_url, submit_verified  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

SUBJECT = "reviewer.one@example.com"
OTHER = "reviewer.two@example.com"


def make_db(url: str) -> str:
    """Chinook-like: customers and their reviews; two people reviewed the same track."""
    metadata = sa.MetaData()
    customers = sa.Table("customers", metadata,
                         sa.Column("CustomerId", sa.Integer, primary_key=True, autoincrement=False),
                         sa.Column("Email", sa.String(60)))
    reviews = sa.Table("reviews", metadata,
                       sa.Column("review_id", sa.Integer, primary_key=True, autoincrement=False),
                       sa.Column("CustomerId", sa.Integer), sa.Column("track_id", sa.Integer),
                       sa.Column("body", sa.String(200)), sa.Column("code", sa.String(20)),
                       sa.UniqueConstraint("code", name="reviews_code_key"))
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(customers.insert(), [{"CustomerId": 1, "Email": SUBJECT}, {"CustomerId": 2, "Email": OTHER}])
        conn.execute(reviews.insert(), [
            {"review_id": 1, "CustomerId": 1, "track_id": 7, "body": "one's review", "code": "r-1"},
            {"review_id": 2, "CustomerId": 2, "track_id": 7, "body": "two's review", "code": "r-2"},
        ])
    engine.dispose()
    return url


def datamap(url: str, reviews: str) -> str:
    return f"""\
version: 1
stores:
  music:
    type: sql
    shared: true
    connection: {{url: "{url}"}}
    collections:
      customers:
        fields:
          CustomerId: {{primary_key: true}}
          Email: {{category: user.contact.email, identity: email, strategy: hash}}
      reviews:
        fields:
{reviews}"""


WRONG_KEY = """\
          CustomerId: {references: [music.customers.CustomerId]}
          track_id: {primary_key: true}
          body: {category: user.content, strategy: "null"}
"""
RIGHT_KEY = """\
          review_id: {primary_key: true}
          CustomerId: {references: [music.customers.CustomerId]}
          track_id: {}
          body: {category: user.content, strategy: "null"}
"""


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def bodies(url: str) -> dict[int, str | None]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = dict(conn.execute(sa.text("SELECT review_id, body FROM reviews")).all())
    engine.dispose()
    return found


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def any_url(request, tmp_path):
    if request.param == "sqlite":
        return make_db(f"sqlite:///{tmp_path / 'music.sqlite3'}")
    from tests.servers import server_required

    server_required(request.param)  # fails instead of skipping with CI=true
    return make_db(request.getfixturevalue(f"{request.param}_url"))


def test_a_primary_key_that_is_not_a_key_of_the_table_is_refused_with_the_real_key(any_url):
    # given a map that declares reviews.track_id as the row key (two people reviewed track 7)
    text = datamap(any_url, WRONG_KEY)
    # when it is loaded, then it is refused at the line of track_id, naming the table's real key
    with pytest.raises(DataMapInvalid) as info:
        datamap_load_text(text=text, filename="map.yaml")
    [problem] = info.value.problems
    assert problem.line == line_of(text, "track_id:")
    assert problem.message.startswith("primary_key track_id is not a key of table reviews")
    assert "primary key is (review_id)" in problem.message
    assert "`review_id: {primary_key: true}`" in problem.message  # not in the map yet: add it
    assert not Store.objects.exists()
    # the table's primary key loads cleanly
    report = datamap_load_report(text=datamap(any_url, RIGHT_KEY), filename="map.yaml")
    assert report.warnings == []


def test_a_unique_constraint_is_a_key_and_so_is_a_superset_of_one(any_url):
    # a unique constraint (code) identifies a row; so does (review_id, track_id) ⊇ the primary key
    for reviews in (WRONG_KEY.replace("track_id: {primary_key: true}", "code: {primary_key: true}"),
                    RIGHT_KEY.replace("track_id: {}", "track_id: {primary_key: true}")):
        datamap_load_text(text=datamap(any_url, reviews), filename="map.yaml")
    assert sorted(Field.objects.filter(primary_key=True, collection__name="reviews")
                  .values_list("name", flat=True)) == ["review_id", "track_id"]


def test_a_partial_unique_index_is_not_a_key(tmp_path):
    url = make_db(f"sqlite:///{tmp_path / 'music.sqlite3'}")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE UNIQUE INDEX reviews_track_live ON reviews (track_id) WHERE body IS NULL"))
        conn.execute(sa.text("CREATE UNIQUE INDEX reviews_lower_code ON reviews (lower(code))"))
    engine.dispose()
    with pytest.raises(DataMapInvalid, match="primary_key track_id is not a key of table reviews"):
        datamap_load_text(text=datamap(url, WRONG_KEY), filename="map.yaml")


def test_a_table_without_any_key_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'music.sqlite3'}"
    make_db(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (CustomerId INTEGER, track_id INTEGER, body TEXT)"))
    engine.dispose()
    text = datamap(url, WRONG_KEY).replace("      reviews:\n", "      notes:\n")
    with pytest.raises(DataMapInvalid) as info:
        datamap_load_text(text=text, filename="map.yaml")
    [problem] = info.value.problems
    assert "the table has no primary key and no unique constraint" in problem.message
    assert problem.line == line_of(text, "track_id:")


def test_test_store_reports_the_wrong_key(tmp_path):
    url = make_db(f"sqlite:///{tmp_path / 'music.sqlite3'}")
    datamap_load_text(text=datamap(url, WRONG_KEY), filename="map.yaml", offline=True)
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 schema problem"):
        call_command("test_store", "music", stderr=err)
    assert "reviews.fields.track_id.primary_key: primary_key track_id is not a key" in err.getvalue()
    assert "primary key is (review_id)" in err.getvalue()


def test_an_erasure_by_a_key_that_matches_two_rows_fails_and_changes_nothing(any_url, workspaces, mailoutbox):
    # given the wrong-key map loaded without the live check (loaded --offline, or the table's key
    # changed after the load)
    datamap_load_text(text=datamap(any_url, WRONG_KEY), filename="map.yaml", offline=True)
    # when the first reviewer's erasure runs
    request = submit_verified(workspaces[0], mailoutbox, "erasure", email=SUBJECT)
    run_inline(request)
    request.refresh_from_db()
    # then the node fails naming the collection, the request is not completed, and no review
    # changed — neither the other person's (the old code set it to NULL) nor, rolled back, the subject's
    assert request.status == RequestStatus.NEEDS_ATTENTION
    task = RequestTask.objects.get(request=request, phase=TaskPhase.ERASURE, node="music.reviews")
    assert task.error.startswith("music.reviews: the row key (track_id) would change 2 rows, not 1; nothing was "
                                 "changed"), task.error
    assert bodies(any_url) == {1: "one's review", 2: "two's review"}


def test_an_erasure_by_the_table_key_changes_only_the_subjects_row(any_url, workspaces, mailoutbox):
    datamap_load_text(text=datamap(any_url, RIGHT_KEY), filename="map.yaml")
    request = submit_verified(workspaces[0], mailoutbox, "erasure", email=SUBJECT)
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    assert bodies(any_url) == {1: None, 2: "two's review"}


# --- duplicate YAML keys -------------------------------------------------------------------------

DUPLICATE = """\
version: 1
stores:
  crm:
    type: sql
    shared: true
    connection: {url: "URL"}
    collections:
      customers:
        fields:
          CustomerId: {primary_key: true}
          Email: {category: user.contact.email, identity: email, strategy: hash}
          Email: {category: system.operations}
          name: {category: user.name, strategy: shred}
"""


def test_a_duplicate_yaml_key_is_refused_with_both_lines_and_the_other_problems(tmp_path):
    # given a map where a second `Email:` would replace the identity field, and another problem
    url = make_db(f"sqlite:///{tmp_path / 'music.sqlite3'}")
    text = DUPLICATE.replace("URL", url)
    path = tmp_path / "map.yaml"
    path.write_text(text)
    # when it is loaded, then the load fails (it loaded with rc=0), naming both occurrences
    with pytest.raises(CommandError) as info:
        call_command("load_datamap", str(path), "--offline", stdout=io.StringIO())
    message = str(info.value)
    first = next(i for i, line in enumerate(text.splitlines(), 1) if line.strip().startswith("Email:"))
    assert (f"{path}:{first + 1}: stores.crm.collections.customers.fields.Email: duplicate key 'Email': "
            f"also defined at {path}:{first};") in message
    # reported with the other problems, in one go
    assert "unknown strategy 'shred'" in message
    assert not Store.objects.exists()


def test_duplicate_keys_at_every_level_and_merge_keys_are_not_duplicates():
    text = DUPLICATE.replace("URL", "sqlite:///unused.sqlite3").replace(
        "          Email: {category: system.operations}\n", "").replace("strategy: shred", "strategy: hash") + """\
      customers:
        fields:
          id: {primary_key: true}
base: &defaults {category: user.name}
"""
    with pytest.raises(DataMapInvalid) as info:
        datamap_load_text(text=text, filename="map.yaml", offline=True)
    found = [(p.path, p.line, p.message) for p in info.value.problems if "duplicate key" in p.message]
    first, second = [i for i, line in enumerate(text.splitlines(), 1) if line == "      customers:"]
    assert found == [("stores.crm.collections.customers", second,
                      f"duplicate key 'customers': also defined at map.yaml:{first}; YAML keeps only the last "
                      "one, which replaces the first — remove or merge one of them")]
    # an explicit key next to a merge key (<<: *anchor) overrides it, as YAML means: not a duplicate
    merged = DUPLICATE.replace("URL", "sqlite:///unused.sqlite3").replace(
        "          Email: {category: system.operations}\n", "").replace(
        "name: {category: user.name, strategy: shred}",
        "name: &n {category: user.name, strategy: hash}\n          nick: {<<: *n, strategy: random_rewrite}")
    datamap_load_text(text=merged, filename="map.yaml", offline=True)
    assert Field.objects.get(name="nick").strategy == "random_rewrite"
