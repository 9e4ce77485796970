"""The data map format: loading, validation errors that name file and key, the graph."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from governance.datamap.graph import DataMapGraph
from governance.datamap.models import Field, Store
from governance.datamap.selectors import StoreMisconfigured, store_connection_settings
from governance.datamap.services import datamap_load_text
from governance.datamap.spec import ERR_CYCLE, ERR_UNREACHABLE, DataMapInvalid, datamap_parse

pytestmark = pytest.mark.django_db

GOOD = """\
version: 1
stores:
  shop:
    type: sql
    connection: {url: "${SHOP_URL}"}
    secrets: {password: "s3cret"}
    collections:
      customers:
        fields:
          id: {primary_key: true}
          email: {category: user.contact.email, identity: email, strategy: hash}
      orders:
        fields:
          id: {primary_key: true}
          customer_id: {references: [shop.customers.id]}
          total: {category: user.financial, strategy: retain, legal_basis: "tax law"}
      order_lines:
        fields:
          id: {primary_key: true}
          order_id: {references: [shop.orders.id]}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(DataMapInvalid) as info:
        datamap_parse(text, filename="map.yaml")
    return [p.render("map.yaml") for p in info.value.problems]


def test_load_stores_collections_fields_and_encrypts_secrets(monkeypatch):
    # when a valid map is loaded
    datamap_load_text(text=GOOD, filename="map.yaml")
    # then the models hold it, secrets encrypted, env references kept as references
    store = Store.objects.get(key="shop")
    assert store.connection == {"url": "${SHOP_URL}"}
    assert store.secret_values() == {"password": "s3cret"}
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM datamap_store WHERE key = %s", ["shop"])
        raw = cursor.fetchone()[0]
    assert "s3cret" not in raw and raw.startswith("v1.")
    assert Field.objects.get(collection__name="orders", name="total").legal_basis == "tax law"
    monkeypatch.setenv("SHOP_URL", "sqlite:///x.db")
    assert store_connection_settings(store=store) == {"url": "sqlite:///x.db", "password": "s3cret"}
    monkeypatch.delenv("SHOP_URL")
    with pytest.raises(StoreMisconfigured, match="SHOP_URL"):
        store_connection_settings(store=store)


def test_graph_orders_parents_first_for_access_and_children_first_for_erasure():
    graph = DataMapGraph(datamap_parse(GOOD))
    assert graph.access_order() == ["shop.customers", "shop.orders", "shop.order_lines"]
    assert graph.erasure_order() == ["shop.order_lines", "shop.orders", "shop.customers"]
    assert graph.seeds() == ["shop.customers"]
    assert "<svg" in graph.svg() and "shop.orders" in graph.svg()


def test_errors_name_file_line_and_key_path():
    text = GOOD.replace("strategy: hash", "strategy: shred").replace("user.financial", "user.finance")
    found = problems(text)
    assert any(p.startswith("map.yaml:11: stores.shop.collections.customers.fields.email.strategy: unknown strategy 'shred'")
               for p in found), found
    assert any("stores.shop.collections.orders.fields.total.category: unknown data category" in p for p in found)


def test_unknown_connector_lists_known_types():
    found = problems(GOOD.replace("type: sql", "type: oracle"))
    assert any("stores.shop.type: unknown connector type 'oracle'; known types: http, mamoru, redis, sql" in p
               for p in found), found


def test_unreachable_collection_is_reported():
    text = GOOD + """\
      audit_trail:
        fields:
          id: {primary_key: true}
          note: {category: user.content}
"""
    found = problems(text)
    assert any("stores.shop.collections.audit_trail" in p and ERR_UNREACHABLE in p for p in found), found


def test_reference_cycle_is_reported():
    text = GOOD.replace("order_id: {references: [shop.orders.id]}", "order_id: {references: [shop.orders.id]}\n"
                        "          back: {references: [shop.order_lines.id]}").replace(
        "customer_id: {references: [shop.customers.id]}",
        "customer_id: {references: [shop.customers.id]}\n          line: {references: [shop.order_lines.id]}")
    found = problems(text)
    assert any(ERR_CYCLE in p and "shop.orders -> shop.order_lines -> shop.orders" in p for p in found), found


@pytest.mark.parametrize("text,expected", [
    ("stores: [1, 2]", "stores: must be a non-empty mapping"),
    ("- a\n- b", "(document): the document must be a mapping"),
    ("stores: {shop: {type: sql, collections: {c: {fields: {id: {prim: 1}}}}}}", "fields.id.prim: unknown key"),
    ("stores:\n  shop: {type: sql\n", "not valid YAML"),
    (GOOD.replace("[shop.customers.id]", "[shop.clients.id]"), "no collection shop.clients"),
    (GOOD.replace('legal_basis: "tax law"', 'retention: "7y"'), "a 'retain' strategy needs a legal_basis"),
    (GOOD.replace("identity: email", "identity: passport"), "unknown identity kind 'passport'"),
    (GOOD.replace("          id: {primary_key: true}\n          email", "          id: {}\n          email"),
     "customers.fields: a collection with erasure strategies needs a primary_key field"),
])
def test_malformed_maps_get_clear_errors(text, expected):
    assert any(expected in p for p in problems(text)), problems(text)


def test_load_datamap_command(tmp_path, capsys):
    path = tmp_path / "map.yaml"
    path.write_text(GOOD)
    call_command("load_datamap", str(path))
    assert "loaded store shop (sql): 3 collections" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("type: sql", "type: nope"))
    with pytest.raises(CommandError, match=r"bad.yaml:4: stores.shop.type: unknown connector type 'nope'"):
        call_command("load_datamap", str(bad))
    with pytest.raises(CommandError, match="no such file"):
        call_command("load_datamap", str(tmp_path / "missing.yaml"))


def test_reload_replaces_collections_and_prune_removes_other_stores():
    datamap_load_text(text=GOOD, filename="a.yaml")
    other = GOOD.replace("  shop:", "  crm:").replace("shop.", "crm.")
    datamap_load_text(text=other, filename="b.yaml")
    assert set(Store.objects.values_list("key", flat=True)) == {"shop", "crm"}
    datamap_load_text(text=GOOD.replace("      order_lines:\n        fields:\n          id: {primary_key: true}\n"
                                        "          order_id: {references: [shop.orders.id]}\n", ""),
                      filename="a.yaml", prune=True)
    assert list(Store.objects.values_list("key", flat=True)) == ["shop"]
    assert Store.objects.get(key="shop").collections.count() == 2


def test_admin_shows_graph(admin_client):
    datamap_load_text(text=GOOD, filename="map.yaml")
    response = admin_client.get("/admin/datamap/store/")
    assert response.status_code == 200
    assert b"<svg" in response.content and b"shop.customers" in response.content
