"""Masking strategies and the connector registry."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dsr.connectors import UnknownConnector, connector_class
from dsr.masking import MaskContext, UnknownStrategy, row_plan, strategy_get
from governance.datamap.spec import CollectionSpec, FieldSpec


def ctx(secret: bytes = b"k" * 32, **kw) -> MaskContext:
    return MaskContext(secret=secret, node="shop.customers", field=kw.get("field", "email"),
                       row_key=kw.get("row_key", "1"), options=kw.get("options", {}))


def test_hash_and_hmac_are_keyed_and_stable_within_a_request():
    for name in ("hash", "hmac"):
        strategy = strategy_get(name)
        first = strategy.mask("a@example.com", context=ctx())
        assert first == strategy.mask("a@example.com", context=ctx())  # idempotent re-runs
        assert first != strategy.mask("a@example.com", context=ctx(b"x" * 32))  # another request
        assert "a@example.com" not in first and len(first) == 64
    assert len(strategy_get("hash").mask("v", context=ctx(options={"length": 12}))) == 12


def test_random_rewrite_is_deterministic_per_row_and_unlinkable():
    strategy = strategy_get("random_rewrite")
    one = strategy.mask("Hanako Yamada", context=ctx(field="name"))
    assert one == strategy.mask("Hanako Yamada", context=ctx(field="name"))
    assert one != "Hanako Yamada" and len(one) == len("Hanako Yamada")
    assert one != strategy.mask("Hanako Yamada", context=ctx(field="name", row_key="2"))


def test_unknown_strategy_lists_known_ones():
    with pytest.raises(UnknownStrategy, match="known: delete_row, hash, hmac, null, random_rewrite, retain"):
        strategy_get("shred")


def _collection(*fields: FieldSpec) -> CollectionSpec:
    return CollectionSpec(store="shop", name="orders", fields=[FieldSpec("id", primary_key=True), *fields])


def test_retained_field_turns_delete_row_into_masking():
    """GDPR Art. 17(3)(b): a row under a legal hold keeps only the retained fields."""
    collection = _collection(
        FieldSpec("email", category="user.contact.email", strategy="delete_row"),
        FieldSpec("total", category="user.financial", strategy="retain", legal_basis="tax"),
        FieldSpec("note", category="user.content"),
        FieldSpec("status", category="system.operations"),
    )
    row = {"id": 7, "email": "a@example.com", "total": 10, "note": "hi", "status": "paid"}
    plan = row_plan(collection=collection, row=row, secret=b"k" * 32, node="shop.orders")
    assert not plan.delete and plan.key == {"id": 7}
    assert plan.values == {"email": None, "note": None}


def test_delete_row_without_hold_deletes():
    collection = _collection(FieldSpec("email", category="user.contact.email", strategy="delete_row"))
    plan = row_plan(collection=collection, row={"id": 1, "email": "x"}, secret=b"k" * 32, node="n")
    assert plan.delete


def test_unknown_connector_type_lists_known_ones():
    with pytest.raises(UnknownConnector, match="known types: http, mamoru, redis, sql"):
        connector_class("oracle")


@pytest.mark.django_db
def test_test_store_command(sqlite_stores, capsys):
    from tests.dsr.conftest import load_map

    load_map(sqlite_stores)
    call_command("test_store", "shop")
    assert "shop (sql): sqlite reachable" in capsys.readouterr().out
    call_command("test_store", "mailing")
    sqlite_stores.mailing.down = True
    with pytest.raises(CommandError, match="StoreUnavailable: GET /health: HTTP 503"):
        call_command("test_store", "mailing")
    with pytest.raises(CommandError, match="no store 'nope' in the data map; known: crm, mailing, shop"):
        call_command("test_store", "nope")


@pytest.mark.django_db
def test_missing_table_fails_the_node_with_a_clear_error(workspaces, mailoutbox, sqlite_stores):
    """A store error is never an empty result: the request needs attention and says why."""
    import sqlalchemy as sa

    from dsr.execution import run_inline
    from tests.dsr.conftest import load_map, submit_verified

    load_map(sqlite_stores)
    engine = sa.create_engine(sqlite_stores.crm_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE tickets"))
    engine.dispose()
    request = submit_verified(workspaces[1], mailoutbox, "access")
    run_inline(request)
    request.refresh_from_db()
    assert request.status == "needs_attention"
    assert "crm.tickets: table 'tickets' does not exist" in request.attention_reason


@pytest.mark.django_db  # the store's rate is counted in the shared cache (the database cache here)
def test_http_connector_pages_reads_rate_limits_and_maps_statuses(mailing):
    """Declarative REST: pagination, per-row read, 404 as no rows, 503 as retry, other 4xx as error."""
    from dsr.connectors import StoreError, StoreUnavailable
    from dsr.masking import RowPlan

    app, url = mailing
    app.add_members([{"id": i, "email": "Same@Example.com", "name": f"n{i}", "list_name": "l", "status": "s",
                      "subscribed_at": ""} for i in (1, 2, 3)])
    collection = CollectionSpec(store="mailing", name="members", fields=[
        FieldSpec("id", primary_key=True), FieldSpec("email", identity="email"), FieldSpec("name")],
        options={"lookup": {"path": "/members", "params": {"email": "{email}"}, "rows": "data"},
                 "read": {"path": "/members/{id}", "row": "data"},
                 "update": {"method": "PATCH", "path": "/members/{id}"},
                 "delete": {"method": "DELETE", "path": "/members/{id}"},
                 "pagination": {"type": "page", "param": "page", "size_param": "per_page", "size": 2}})
    connector = connector_class("http")(store_key="mailing", settings={
        "base_url": url, "token": "test-token", "rate_limit_per_second": 100, "allow_internal_hosts": True})
    before = app.requests
    rows = list(connector.retrieve(collection, {"email": ["same@example.com"]}))
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert app.requests - before == 2 + 3  # two pages, three reads
    plan = RowPlan(key={"id": 2}, delete=False, values={"name": None}, original=rows[1])
    assert connector.mask(collection, [plan]) == 1
    assert connector.delete(collection, [plan]) == 1
    assert connector.delete(collection, [plan]) == 0  # already gone: not an error
    app.fail_next = 1
    with pytest.raises(StoreUnavailable, match="HTTP 503"):
        list(connector.retrieve(collection, {"email": ["same@example.com"]}))
    bad = connector_class("http")(store_key="mailing", settings={"base_url": url, "token": "wrong",
                                                                       "allow_internal_hosts": True})
    with pytest.raises(StoreError, match="HTTP 401"):
        list(bad.retrieve(collection, {"email": ["x@example.com"]}))
    connector.close()
    bad.close()


@pytest.mark.redis
def test_redis_connector_scans_when_keys_cannot_be_built(redis_prefix):
    """Keys by pattern: a lookup by a hash field scans `prefix:sess:*`; masks and deletes rows."""
    import redis

    from dsr.masking import RowPlan
    from tests.servers import REDIS_URL

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.hset(f"{redis_prefix}sess:a*1", mapping={"email": "x@example.com", "ip": "1.2.3.4"})
    client.hset(f"{redis_prefix}sess:b2", mapping={"email": "y@example.com", "ip": "5.6.7.8"})
    collection = CollectionSpec(store="cache", name="sess", fields=[
        FieldSpec("sid", primary_key=True), FieldSpec("email", identity="email"), FieldSpec("ip")],
        options={"type": "hash", "key": redis_prefix + "sess:{sid}"})
    connector = connector_class("redis")(store_key="cache", settings={"url": REDIS_URL})
    rows = list(connector.retrieve(collection, {"email": ["x@example.com"]}))
    assert rows == [{"email": "x@example.com", "ip": "1.2.3.4", "_key": f"{redis_prefix}sess:a*1", "sid": "a*1"}]
    # a key built from a value containing glob characters is matched literally
    assert [r["sid"] for r in connector.retrieve(collection, {"sid": ["a*1"]})] == ["a*1"]
    plan = RowPlan(key={"sid": "a*1"}, delete=False, values={"ip": None}, original=rows[0])
    assert connector.mask(collection, [plan]) == 1
    assert client.hgetall(f"{redis_prefix}sess:a*1") == {"email": "x@example.com"}
    assert connector.delete(collection, [plan]) == 1
    assert not client.exists(f"{redis_prefix}sess:a*1") and client.exists(f"{redis_prefix}sess:b2")
    connector.close()
    client.close()
