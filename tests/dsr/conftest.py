"""Fixtures for DSR tests: a multi-store dataset on real servers and a loopback HTTP API."""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from dsr import demo
from dsr.demo_mailing import MailingApp, serve
from tests.servers import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL, REDIS_URL

CODE_RE = re.compile(r"\b(\d{6})\b")
SUBJECT_ID = 1


@dataclass
class Stores:
    shop_url: str
    crm_url: str
    mailing: MailingApp
    mailing_url: str
    redis_url: str | None = None
    redis_prefix: str = ""
    data: dict = field(default_factory=dict)

    def engine(self, which: str) -> sa.Engine:
        return sa.create_engine(self.shop_url if which == "shop" else self.crm_url)

    def rows(self, which: str, table: str) -> list[dict]:
        engine = self.engine(which)
        with engine.connect() as conn:
            result = [dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")).mappings()]
        engine.dispose()
        return result


@pytest.fixture
def mailing(tmp_path):
    app = MailingApp(tmp_path / "mailing.sqlite3", token="test-token")
    server, _thread = serve(app)
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _people() -> list[dict]:
    rng = random.Random(42)
    people = [demo.person(i, rng) for i in range(1, 9)]
    people[0]["email"] = "subject.person@example.com"
    return people


def build_stores(*, shop_url: str, crm_url: str, mailing, redis_url: str | None = None,
                 redis_prefix: str = "") -> Stores:
    app, url = mailing
    shop, crm = sa.create_engine(shop_url), sa.create_engine(crm_url)
    demo.schemas_create(shop=shop, crm=crm)
    data = demo.dataset_rows(_people(), rng=random.Random(1))
    client = None
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url, decode_responses=True)
    demo.dataset_write(data=data, shop=shop, crm=crm, mailing=app, redis_client=client, redis_prefix=redis_prefix)
    shop.dispose()
    crm.dispose()
    return Stores(shop_url=shop_url, crm_url=crm_url, mailing=app, mailing_url=url, redis_url=redis_url,
                  redis_prefix=redis_prefix, data=data)


@pytest.fixture
def sqlite_stores(tmp_path, mailing) -> Stores:
    return build_stores(shop_url=f"sqlite:///{tmp_path / 'shop.sqlite3'}",
                        crm_url=f"sqlite:///{tmp_path / 'crm.sqlite3'}", mailing=mailing)


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL database for one test."""
    name = f"mamoru_dsr_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + f"/{name}"
    yield url
    from dsr.connectors.sql import engines_dispose

    engines_dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def mariadb_url():
    """A throwaway MariaDB database for one test."""
    name = f"mamoru_dsr_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(MARIADB_ADMIN_URL.rsplit("/", 1)[0] + "/")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    yield MARIADB_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    from dsr.connectors.sql import engines_dispose

    engines_dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    admin.dispose()


@pytest.fixture
def redis_prefix():
    """A throwaway key prefix on the Redis server (keys removed afterwards)."""
    import redis

    prefix = f"mamoru-dsr-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def load_map(stores: Stores, **kwargs) -> None:
    from governance.datamap.services import datamap_load_text

    text = demo.datamap_yaml(shop_url=stores.shop_url, crm_url=stores.crm_url, mailing_url=stores.mailing_url,
                             token="test-token", redis_url=stores.redis_url, redis_prefix=stores.redis_prefix,
                             **kwargs)
    datamap_load_text(text=text, filename="test-datamap.yaml", prune=True)


def code_from(mailoutbox) -> str:
    return CODE_RE.search(mailoutbox[-1].body).group(1)


def submit_verified(workspace, mailoutbox, request_type: str, email: str = "subject.person@example.com",
                    **kwargs):
    from django.test import TestCase

    from dsr.execution import inline_mode
    from dsr.services import dsr_request_submit, dsr_request_verify

    with inline_mode(), TestCase.captureOnCommitCallbacks(execute=True):
        request = dsr_request_submit(workspace=workspace, request_type=request_type, email=email, **kwargs)
    with inline_mode(), TestCase.captureOnCommitCallbacks(execute=True):
        return dsr_request_verify(request=request, code=code_from(mailoutbox))


def subject_profile(workspace, email: str = "subject.person@example.com", customer_id: int = SUBJECT_ID):
    from governance.subjects.services import IdentityInput, profile_upsert

    return profile_upsert(
        workspace=workspace,
        identities=[IdentityInput("email", email), IdentityInput("customer_id", str(customer_id), "shop")],
        attributes={"full_name": "Subject Person"},
    ).profile
