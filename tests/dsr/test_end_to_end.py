"""Access and erasure across connected stores, checked by reading the raw stores."""

from __future__ import annotations

import io
import json
import zipfile
from decimal import Decimal

import pytest

from dsr.execution import run_inline
from dsr.models import RequestStatus, TaskStatus
from dsr.package import package_stream
from tests.dsr.conftest import SUBJECT_ID, build_stores, load_map, subject_profile, submit_verified

pytestmark = pytest.mark.django_db


def _package(request) -> dict[str, object]:
    data = b"".join(package_stream(package=request.package))
    archive = zipfile.ZipFile(io.BytesIO(data))
    return {name: archive.read(name).decode("utf-8") for name in archive.namelist()}


def _norm(rows):
    return sorted(json.loads(json.dumps(rows, default=str)), key=lambda r: str(r.get("id", r)))


def _subject(stores):
    return next(c for c in stores.data["customers"] if c["id"] == SUBJECT_ID)


def _identifiers(stores) -> list[str]:
    person = _subject(stores)
    return [person["email"], person["phone"], person["name"], person["address"]]


def _raw_dump(stores) -> list[tuple[str, dict]]:
    rows = []
    for which, tables in (("shop", ("customers", "orders", "order_lines")), ("crm", ("tickets",))):
        for table in tables:
            rows += [(f"{which}.{table}", r) for r in stores.rows(which, table)]
    rows += [("mailing.members", r) for r in stores.mailing.all_members()]
    if stores.redis_url:
        import redis

        client = redis.Redis.from_url(stores.redis_url, decode_responses=True)
        for key in client.scan_iter(match=stores.redis_prefix + "*"):
            kind = client.type(key)
            value = client.hgetall(key) if kind == "hash" else {"members": sorted(client.smembers(key))}
            rows.append((f"redis:{key}", {"_key": key, **value}))
        client.close()
    return rows


def check_access(workspace, mailoutbox, stores):
    # given a subject known to Mamoru with a shop customer id
    subject_profile(workspace)
    # when they ask for their data
    request = submit_verified(workspace, mailoutbox, "access")
    run_inline(request)
    request.refresh_from_db()
    # then every store answered with exactly their rows
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    files = _package(request)
    data = stores.data
    customers = json.loads(files["shop/customers.json"])
    assert [c["id"] for c in customers] == [SUBJECT_ID]
    assert customers[0]["email"] == _subject(stores)["email"]
    orders = json.loads(files["shop/orders.json"])
    assert sorted(o["id"] for o in orders) == sorted(o["id"] for o in data["orders"] if o["customer_id"] == SUBJECT_ID)
    order_ids = {o["id"] for o in orders}
    lines = json.loads(files["shop/order_lines.json"])
    assert sorted(r["id"] for r in lines) == sorted(r["id"] for r in data["order_lines"] if r["order_id"] in order_ids)
    tickets = json.loads(files["crm/tickets.json"])
    assert [t["id"] for t in tickets] == [t["id"] for t in data["tickets"] if t["customer_ref"] == SUBJECT_ID]
    members = json.loads(files["mailing/members.json"])
    assert [m["email"] for m in members] == [_subject(stores)["email"]]
    if stores.redis_url:
        sessions = json.loads(files["sessions/sessions.json"])
        assert [s["customer_id"] for s in sessions] == [str(SUBJECT_ID)]
        devices = json.loads(files["sessions/devices.json"])
        assert [d["device_id"] for d in devices] == [f"dev-{SUBJECT_ID}-a"]
    assert "shop/customers.csv" in files and "summary.html" in files
    manifest = json.loads(files["manifest.json"])
    assert {"purposes", "categories", "recipients", "retention", "sources"} <= set(manifest["article_15"])
    assert any(c["code"] == "user.contact.email" for c in manifest["article_15"]["categories"])
    # no one else's e-mail anywhere in the package
    others = [c["email"] for c in data["customers"] if c["id"] != SUBJECT_ID]
    blob = "\n".join(files.values())
    assert not [e for e in others if e in blob]
    return request


def check_erasure(workspace, mailoutbox, stores):
    profile = subject_profile(workspace)
    before = {name: _norm(rows) for name, rows in _group(_raw_dump(stores)).items()}
    request = submit_verified(workspace, mailoutbox, "erasure")
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    assert all(t.status == TaskStatus.DONE for t in request.tasks.all())
    assert request.events.filter(kind="erasure_verified").exists()
    after = _raw_dump(stores)

    # nothing identifying of the subject is left anywhere (raw stores, not through Mamoru)
    leftovers = [(where, value) for where, row in after for value in row.values()
                 for ident in _identifiers(stores) if value is not None and ident in str(value)]
    assert leftovers == []

    customers = {r["id"]: r for r in stores.rows("shop", "customers")}
    subject_row = customers[SUBJECT_ID]
    assert subject_row["phone"] is None and subject_row["address"] is None
    assert subject_row["email"] and len(subject_row["email"]) == 64  # keyed hash
    # retained rows keep only what the hold allows
    for order in stores.rows("shop", "orders"):
        original = next(o for o in stores.data["orders"] if o["id"] == order["id"])
        assert Decimal(str(order["total"])) == Decimal(str(original["total"]))
        if order["customer_id"] == SUBJECT_ID:
            assert order["shipping_address"] is None
            assert order["placed_at"] == original["placed_at"]
        else:
            assert order["shipping_address"] == original["shipping_address"]
    assert not [t for t in stores.rows("crm", "tickets") if t["customer_ref"] == SUBJECT_ID]
    # other subjects' data is untouched
    after_grouped = {name: _norm(rows) for name, rows in _group(after).items()}
    for name, rows in before.items():
        others_before = [r for r in rows if not _belongs_to_subject(name, r, stores)]
        others_after = [r for r in after_grouped.get(name, []) if not _belongs_to_subject(name, r, stores)]
        assert others_before == others_after, name
    # the Mamoru profile is crypto-shredded
    profile.refresh_from_db()
    assert profile.status == "shredded"
    return request


def _group(rows):
    grouped: dict[str, list] = {}
    for where, row in rows:
        name = where if not where.startswith("redis:") else "redis"
        grouped.setdefault(name, []).append(row)
    return grouped


def _belongs_to_subject(name: str, row: dict, stores) -> bool:
    subject = _subject(stores)
    order_ids = {o["id"] for o in stores.data["orders"] if o["customer_id"] == SUBJECT_ID}
    if name == "shop.customers":
        return row["id"] == SUBJECT_ID
    if name == "shop.orders":
        return row["customer_id"] == SUBJECT_ID
    if name == "shop.order_lines":
        return row["order_id"] in order_ids
    if name == "crm.tickets":
        return row["customer_ref"] == SUBJECT_ID
    if name == "mailing.members":
        return row["email"] == subject["email"] or row["id"] == SUBJECT_ID
    if name == "redis":
        return row.get("customer_id") == str(SUBJECT_ID) or row["_key"].endswith(f"devices:{SUBJECT_ID}")
    return False


def test_access_sqlite_and_http(workspaces, mailoutbox, sqlite_stores):
    """GDPR Art. 15: a copy of exactly the subject's rows from every store, with Art. 15 info."""
    load_map(sqlite_stores)
    request = check_access(workspaces[1], mailoutbox, sqlite_stores)
    assert request.package.downloads == 0


def test_erasure_sqlite_and_http(workspaces, mailoutbox, sqlite_stores):
    """GDPR Art. 17 / 17(3)(b): nothing identifying left; tax records keep only retained fields."""
    load_map(sqlite_stores)
    check_erasure(workspaces[1], mailoutbox, sqlite_stores)


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.redis
def test_access_and_erasure_on_servers(workspaces, mailoutbox, mailing, postgres_url, mariadb_url, redis_prefix):
    """Shop on PostgreSQL, CRM on MariaDB, sessions in Redis, mailing list over HTTP."""
    from tests.servers import REDIS_URL

    stores = build_stores(shop_url=postgres_url, crm_url=mariadb_url, mailing=mailing, redis_url=REDIS_URL,
                          redis_prefix=redis_prefix)
    load_map(stores)
    check_access(workspaces[0], mailoutbox, stores)
    check_erasure(workspaces[0], mailoutbox, stores)
