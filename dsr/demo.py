"""Demo stores for data-subject requests, and the dataset builders the tests and bench reuse.

The demo (``seed_demo``) creates under ``var/demo/``: a shop database (customers, orders, order
lines) and a CRM database (support tickets) as SQLite files, a mailing-list API database served by
``manage.py run_demo_mailing`` on 127.0.0.1:8781, and loads a data map for them.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from django.conf import settings

DEMO_MAILING_PORT = int(os.environ.get("MAMORU_DEMO_MAILING_PORT", "8781"))
DEMO_MAILING_TOKEN = "demo-mailing-token"
DEMO_SUBJECTS = [
    # (email, name, locale) — the people a new user can try requests for.
    ("hanako.yamada@example.jp", "山田 花子", "ja"),
    ("erika.mustermann@example.de", "Erika Mustermann", "en"),
]

metadata_shop = sa.MetaData()
customers = sa.Table(
    "customers", metadata_shop,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(200), index=True),
    sa.Column("name", sa.String(200)),
    sa.Column("phone", sa.String(40)),
    sa.Column("address", sa.String(300)),
    sa.Column("created_at", sa.String(32)),
)
orders = sa.Table(
    "orders", metadata_shop,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), index=True),
    sa.Column("placed_at", sa.String(32)),
    sa.Column("total", sa.Numeric(12, 2)),
    sa.Column("shipping_address", sa.String(300)),
)
order_lines = sa.Table(
    "order_lines", metadata_shop,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), index=True),
    sa.Column("sku", sa.String(40)),
    sa.Column("quantity", sa.Integer),
    sa.Column("price", sa.Numeric(12, 2)),
)
metadata_crm = sa.MetaData()
tickets = sa.Table(
    "tickets", metadata_crm,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("customer_ref", sa.Integer, index=True),
    sa.Column("email", sa.String(200), index=True),
    sa.Column("subject", sa.String(200)),
    sa.Column("body", sa.Text),
    sa.Column("created_at", sa.String(32)),
)

DATAMAP_TEMPLATE = """\
# Data map of the demo stores (see docs/datamap.md).
version: 1
stores:
  shop:
    type: sql
    name: Web shop database
    description: Orders and customer accounts
    connection:
      url: "{shop_url}"
    retry: {{attempts: {attempts}, backoff_seconds: {backoff}, max_backoff_seconds: 30}}
    collections:
      customers:
        description: Customer accounts (collected from you at sign-up)
        fields:
          id: {{primary_key: true, identity: customer_id, namespace: shop}}
          email: {{category: user.contact.email, identity: email, strategy: hash}}
          name: {{category: user.name, strategy: random_rewrite}}
          phone: {{category: user.contact.phone_number, strategy: "null"}}
          address: {{category: user.contact.address, strategy: "null"}}
          created_at: {{category: system.operations}}
      orders:
        description: Orders you placed
        fields:
          id: {{primary_key: true}}
          customer_id: {{references: [shop.customers.id]}}
          placed_at: {{category: user.behavior.purchase_history, strategy: retain,
                       legal_basis: "Tax law: invoices kept 7 years", retention: 7 years}}
          total: {{category: user.financial, strategy: retain,
                   legal_basis: "Tax law: invoices kept 7 years", retention: 7 years}}
          shipping_address: {{category: user.contact.address, strategy: "null"}}
      order_lines:
        description: Items of your orders
        fields:
          id: {{primary_key: true}}
          order_id: {{references: [shop.orders.id]}}
          sku: {{category: user.behavior.purchase_history, strategy: retain,
                 legal_basis: "Tax law: invoices kept 7 years", retention: 7 years}}
          quantity: {{category: system.operations}}
          price: {{category: system.operations}}
  crm:
    type: sql
    name: Customer support (CRM)
    connection:
      url: "{crm_url}"
    retry: {{attempts: {attempts}, backoff_seconds: {backoff}, max_backoff_seconds: 30}}
    collections:
      tickets:
        description: Support tickets you opened
        fields:
          id: {{primary_key: true}}
          customer_ref: {{references: [shop.customers.id]}}
          email: {{category: user.contact.email, identity: email, strategy: delete_row}}
          subject: {{category: user.content.private}}
          body: {{category: user.content.private}}
          created_at: {{category: system.operations}}
  mailing:
    type: http
    name: Mailing-list service
    description: Newsletter provider (processor)
    connection:
      base_url: "{mailing_url}"
      allow_internal_hosts: true   # the demo's API runs on loopback (refused unless allowed)
      rate_limit_per_second: 50
      timeout: 5
      not_found_statuses: [404]
      retry_statuses: [429, 502, 503, 504]
      health_path: /health
    secrets:
      token: "{token}"   # stored encrypted; or write token: "${{MAILING_TOKEN}}" to read the environment
    retry: {{attempts: {attempts}, backoff_seconds: {backoff}, max_backoff_seconds: 30}}
    collections:
      members:
        description: Newsletter subscriptions
        options:
          lookup: {{path: /members, params: {{email: "{{email}}"}}, rows: data}}
          update: {{method: PATCH, path: "/members/{{id}}"}}
          delete: {{method: DELETE, path: "/members/{{id}}"}}
          pagination: {{type: page, param: page, size_param: per_page, size: 100}}
        fields:
          id: {{primary_key: true}}
          email: {{category: user.contact.email, identity: email, strategy: delete_row}}
          name: {{category: user.name}}
          list_name: {{category: system.operations}}
          status: {{category: system.operations}}
          subscribed_at: {{category: system.operations}}
"""

REDIS_TEMPLATE = """\
  sessions:
    type: redis
    name: Session cache
    connection:
      url: "{redis_url}"
    retry: {{attempts: {attempts}, backoff_seconds: {backoff}, max_backoff_seconds: 30}}
    collections:
      sessions:
        description: Web sessions
        options: {{type: hash, key: "{prefix}session:{{customer_id}}"}}
        fields:
          customer_id: {{primary_key: true, references: [shop.customers.id]}}
          session_id: {{category: user.device.cookie_id}}
          email: {{category: user.contact.email, identity: email, strategy: delete_row}}
          ip: {{category: user.device.ip_address}}
      devices:
        description: Devices you signed in from
        options: {{type: set, key: "{prefix}devices:{{customer_id}}", member_field: device_id}}
        fields:
          customer_id: {{references: [shop.customers.id]}}
          device_id: {{primary_key: true, category: user.device.cookie_id, strategy: delete_row}}
"""


def datamap_yaml(
    *, shop_url: str, crm_url: str, mailing_url: str, token: str = DEMO_MAILING_TOKEN,
    redis_url: str | None = None, redis_prefix: str = "", attempts: int = 5, backoff: float = 2,
) -> str:
    """The data map of the demo dataset for the given store locations."""
    text = DATAMAP_TEMPLATE.format(shop_url=shop_url, crm_url=crm_url, mailing_url=mailing_url,
                                   token=token, attempts=attempts, backoff=backoff)
    if redis_url:
        text += REDIS_TEMPLATE.format(redis_url=redis_url, prefix=redis_prefix, attempts=attempts, backoff=backoff)
    return text


def schemas_create(*, shop: sa.Engine, crm: sa.Engine) -> None:
    metadata_shop.create_all(shop)
    metadata_crm.create_all(crm)
    # The index that keeps case-insensitive e-mail search fast (docs/datamap.md, Identity
    # matching). MariaDB 10.x has no expression indexes; its _ci collations use the plain one.
    for engine, table in ((shop, "customers"), (crm, "tickets")):
        if engine.dialect.name in {"postgresql", "sqlite"}:
            with engine.begin() as conn:
                conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {table}_email_ci ON {table} (lower(trim(email)))"))


def person(index: int, rng: random.Random) -> dict:
    first = rng.choice(["Aiko", "Ben", "Chiara", "Daiki", "Emma", "Felix", "Hana", "Ivan", "Jun", "Kai"])
    last = rng.choice(["Sato", "Schmidt", "Rossi", "Suzuki", "Martin", "Tanaka", "Novak", "Kim"])
    return {
        "id": index, "email": f"{first.lower()}.{last.lower()}.{index}@example.com",
        "name": f"{first} {last}", "phone": f"+8190{index:08d}",
        "address": f"{index} Example Street, City", "created_at": "2024-01-01T10:00:00",
    }


def dataset_rows(people: Iterable[dict], *, rng: random.Random, orders_per: int = 2, lines_per: int = 2,
                 tickets_per: int = 1) -> dict[str, list[dict]]:
    """Orders, lines, tickets, members, sessions and devices for the given customers."""
    data: dict[str, list[dict]] = {k: [] for k in
                                   ("customers", "orders", "order_lines", "tickets", "members", "sessions", "devices")}
    for p in people:
        cid = p["id"]
        data["customers"].append(p)
        for o in range(orders_per):
            oid = cid * 100 + o
            data["orders"].append({"id": oid, "customer_id": cid, "placed_at": f"2025-0{1 + o % 9}-15",
                                   "total": round(rng.uniform(5, 500), 2), "shipping_address": p["address"]})
            for line in range(lines_per):
                data["order_lines"].append({"id": oid * 10 + line, "order_id": oid, "sku": f"SKU-{rng.randint(1, 999)}",
                                            "quantity": rng.randint(1, 4), "price": round(rng.uniform(1, 100), 2)})
        for t in range(tickets_per):
            data["tickets"].append({"id": cid * 10 + t, "customer_ref": cid, "email": p["email"],
                                    "subject": f"Question about order {cid * 100}",
                                    "body": f"Hello, this is {p['name']}. Please call {p['phone']}.",
                                    "created_at": "2025-03-01T09:00:00"})
        data["members"].append({"id": cid, "email": p["email"], "name": p["name"], "list_name": "newsletter",
                                "status": "subscribed", "subscribed_at": "2024-05-05"})
        data["sessions"].append({"session_id": f"s{cid}x{rng.randint(1000, 9999)}", "customer_id": str(cid),
                                 "email": p["email"], "ip": f"203.0.113.{cid % 250}"})
        data["devices"].append({"customer_id": str(cid), "device_id": f"dev-{cid}-a"})
    return data


def dataset_write(*, data: dict[str, list[dict]], shop: sa.Engine, crm: sa.Engine, mailing=None,
                  redis_client=None, redis_prefix: str = "", batch: int = 5000) -> None:
    """Insert a dataset built by :func:`dataset_rows` into the stores."""
    for table, engine, rows in ((customers, shop, data["customers"]), (orders, shop, data["orders"]),
                                (order_lines, shop, data["order_lines"]), (tickets, crm, data["tickets"])):
        with engine.begin() as conn:
            for start in range(0, len(rows), batch):
                conn.execute(table.insert(), rows[start : start + batch])
    if mailing is not None:
        mailing.add_members(data["members"])
    if redis_client is not None:
        pipe = redis_client.pipeline(transaction=False)
        for s in data["sessions"]:
            pipe.hset(f"{redis_prefix}session:{s['customer_id']}", mapping=s)
        for d in data["devices"]:
            pipe.sadd(f"{redis_prefix}devices:{d['customer_id']}", d["device_id"])
        pipe.execute()


def _demo_dir() -> Path:
    path = Path(settings.VAR_DIR) / "demo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_mailing_db() -> Path:
    return _demo_dir() / "mailing.sqlite3"


def seed(*, stdout, credentials: dict) -> None:
    """Create the demo stores, load their data map and a few demo subjects (idempotent)."""
    from dsr.demo_mailing import MailingApp
    from governance.datamap.services import datamap_load
    from governance.subjects.models import Workspace
    from governance.subjects.services import IdentityInput, profile_upsert

    directory = _demo_dir()
    for name in ("shop.sqlite3", "crm.sqlite3", "mailing.sqlite3"):
        (directory / name).unlink(missing_ok=True)
    shop_url = f"sqlite:///{directory / 'shop.sqlite3'}"
    crm_url = f"sqlite:///{directory / 'crm.sqlite3'}"
    shop, crm = sa.create_engine(shop_url), sa.create_engine(crm_url)
    schemas_create(shop=shop, crm=crm)
    rng = random.Random(7)
    people = [person(i, rng) for i in range(1, 41)]
    for index, (email, name, _locale) in enumerate(DEMO_SUBJECTS, start=1):
        people[index - 1].update(email=email, name=name)
    mailing = MailingApp(demo_mailing_db(), token=DEMO_MAILING_TOKEN)
    dataset_write(data=dataset_rows(people, rng=rng), shop=shop, crm=crm, mailing=mailing)
    shop.dispose()
    crm.dispose()
    path = directory / "datamap.yaml"
    path.write_text(datamap_yaml(shop_url=shop_url, crm_url=crm_url,
                                 mailing_url=f"http://127.0.0.1:{DEMO_MAILING_PORT}"), encoding="utf-8")
    datamap_load(path=path)
    workspace = Workspace.objects.filter(slug="shop-jp").first() or Workspace.objects.first()
    if workspace is not None:
        for index, (email, _name, locale) in enumerate(DEMO_SUBJECTS, start=1):
            profile_upsert(
                workspace=workspace, locale=locale, source="demo",
                identities=[IdentityInput("email", email), IdentityInput("customer_id", str(index), "shop")],
            )
    requests = demo_requests_seed()
    credentials["dsr_demo"] = {
        "data_map": str(path),
        "subjects": [e for e, _n, _l in DEMO_SUBJECTS],
        "mailing_api": f"http://127.0.0.1:{DEMO_MAILING_PORT} (start: manage.py run_demo_mailing)",
    }
    stdout.write(f"DSR demo stores in {directory}; data map loaded ({path.name}); "
                 f"{requests} open demo requests (overdue, due soon, on time, paused, needs attention)\n")


# (workspace slug, type, jurisdiction, locale, days since receipt, e-mail, state, assigned to)
DEMO_REQUESTS = [
    ("shop-eu", "access", "EU", "en", 36, "late.customer@example.de", "awaiting_approval", "dpo"),
    ("shop-jp", "erasure", "JP", "ja", 16, "taro.suzuki@example.jp", "awaiting_approval", ""),
    ("shop-jp", "access", "JP", "ja", 11, "hanako.yamada@example.jp", "awaiting_approval", "analyst"),
    ("shop-eu", "erasure", "EU", "en", 26, "erika.mustermann@example.de", "needs_attention", "dpo"),
    ("shop-eu", "rectification", "EU", "en", 5, "jan.jansen@example.nl", "paused", ""),
    ("shop-jp", "opt_out_sale", "JP", "ja", 2, "yuki.tanaka@example.jp", "awaiting_approval", ""),
]


def demo_requests_seed() -> int:
    """Open requests a new user sees on the dashboard at once: overdue, due this week, on time, one
    waiting for the person's answer (clock paused) and one that needs attention; a few assigned to
    the demo DPO and analyst ("my queue"). Created once (kept when re-seeding); no mail is sent.
    Returns how many exist."""
    import datetime as dt
    import json
    import secrets

    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from audit.services import CREATE, change_record
    from dsr import deadlines
    from dsr.execution import event_add
    from dsr.models import DataSubjectRequest, RequestMessage, RequestStatus
    from governance.crypto import envelope
    from governance.crypto.blind_index import blind_index
    from governance.subjects.identities import normalize_identity
    from governance.subjects.models import Workspace

    users = {u.username: u for u in get_user_model().objects.filter(username__in=["dpo", "analyst"])}
    workspaces = {w.slug: w for w in Workspace.objects.filter(slug__in=["shop-jp", "shop-eu"])}
    count = 0
    for slug, kind, region, locale, age, email, state, assignee in DEMO_REQUESTS:
        workspace = workspaces.get(slug)
        if workspace is None:
            continue
        index = blind_index(kind="dsr-email", value=normalize_identity(kind="email", value=email))
        if DataSubjectRequest.objects.filter(email_index=index, workspace=workspace).exists():
            count += 1
            continue
        received = timezone.now() - dt.timedelta(days=age, hours=3)
        with transaction.atomic():
            request = DataSubjectRequest(
                workspace=workspace, request_type=kind, jurisdiction=region, locale=locale, channel="portal",
                status=RequestStatus.AWAITING_APPROVAL, data_key_id=envelope.data_key_create(owner="dsr.request"),
                email_index=index, due_at=deadlines.due_at(jurisdiction=region, received_at=received),
                acknowledge_due_at=deadlines.acknowledge_due_at(jurisdiction=region, received_at=received),
                assignee=users.get(assignee),
            )
            request.email = email
            request.details = json.dumps({"changes": [{"category": "user.contact.address", "value": "Demo 1"}]}
                                         if kind == "rectification" else {})
            request.seeds = "{}"
            request.masking_secret = secrets.token_hex(32)
            request.save()
            DataSubjectRequest.objects.filter(pk=request.pk).update(
                received_at=received, acknowledged_at=received, verified_at=received + dt.timedelta(minutes=9))
            if state == "needs_attention":
                DataSubjectRequest.objects.filter(pk=request.pk).update(
                    status=RequestStatus.NEEDS_ATTENTION, started_at=received + dt.timedelta(hours=1),
                    attention_reason="Store crm: the connection was refused 5 times (demo). Check the store, "
                                     "then retry the failed nodes.")
            if state == "paused":
                DataSubjectRequest.objects.filter(pk=request.pk).update(
                    paused_at=timezone.now() - dt.timedelta(days=2), pause_reason="identity")
                RequestMessage.objects.create(
                    request=request, direction="outbound", kind="more_information", info_reason="identity",
                    body="Please tell us the order number of your last purchase so that we can confirm it is you.",
                    language=locale, author=users.get("dpo"), paused_clock=True, delivered=True)
            event_add(request, "received", f"{kind} request received via portal (demo)")
            change_record(actor=None, obj=request, action=CREATE, fields=["email", "details"],
                          note="demo request seeded")
        count += 1
    return count
