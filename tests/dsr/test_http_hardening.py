"""The ``http`` connector's hardening (issue 14, item 5), against real loopback servers.

Store ``A`` is the configured API; ``B`` is another origin (another port) that records the headers
it receives: the store's credentials (``token``, ``headers``) must never arrive there, whether a
body link, a ``Link`` header or a redirect points at it. Hosts on internal addresses are refused
unless the store says ``allow_internal_hosts: true`` (these loopback servers say so).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings as django_settings
from django.db import connections

from dsr.connectors import StoreError, StoreUnavailable, connector_class
from governance.datamap.spec import CollectionSpec, FieldSpec
from tests.loopback_http import Recorder, answer
from tests.servers import REDIS_URL, database_url, server_required

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db  # a store's rate and pauses live in the shared cache (here: the database)
TOKEN, API_KEY = "store-secret-token", "store-secret-key"
SECRETS = (TOKEN, API_KEY)


def members(pagination: dict | None = None) -> CollectionSpec:
    return CollectionSpec(
        store="api", name="members",
        fields=[FieldSpec("id", primary_key=True), FieldSpec("email", identity="email")],
        options={"lookup": {"path": "/members", "params": {"email": "{email}"}, "rows": "data"},
                 "delete": {"method": "DELETE", "path": "/members/{id}"},
                 **({"pagination": pagination} if pagination else {})})


def connector(url: str, key: str | None = None, **extra):
    return connector_class("http")(store_key=key or f"api-{uuid.uuid4().hex[:8]}", settings={
        "base_url": url, "token": TOKEN, "headers": {"X-Api-Key": API_KEY},
        "allow_internal_hosts": True, **extra})


def row(n: int) -> dict:
    return {"id": n, "email": "p@example.com"}


def carries_secrets(headers: dict) -> bool:
    text = json.dumps(headers).lower()
    return any(secret.lower() in text for secret in SECRETS)


@pytest.fixture
def servers():
    routes_a: dict = {}
    routes_b: dict = {}

    def route(routes):
        def handle(h):
            split = urlsplit(h.path)
            page = parse_qs(split.query).get("page", ["1"])[0]
            found = routes.get((h.command, split.path, page)) or routes.get((h.command, split.path))
            if found is None:
                return answer(h, 404, {"error": "not found"})
            return found(h)
        return handle

    a = Recorder(handler=route(routes_a))
    b = Recorder(handler=route(routes_b))
    a.routes, b.routes = routes_a, routes_b
    a.url, b.url = f"http://127.0.0.1:{a.port}", f"http://127.0.0.1:{b.port}"
    yield a, b
    a.close()
    b.close()


def test_a_body_link_to_another_origin_never_receives_the_credentials(servers):
    # given page 1 on the store, whose `next` link points to another origin
    a, b = servers
    a.routes[("GET", "/members")] = lambda h: answer(h, 200, {"data": [row(1)], "next": f"{b.url}/members?page=2"})
    b.routes[("GET", "/members")] = lambda h: answer(h, 200, {"data": [row(2)], "next": None})
    store = connector(a.url)
    # when the person's records are read
    rows = list(store.retrieve(members({"type": "link", "next": "next"}), {"email": ["p@example.com"]}))
    store.close()
    # then the store got its credentials, the other origin was asked without them
    assert [r["id"] for r in rows] == [1, 2]
    assert len(a.requests) == 1 and a.requests[0][2]["Authorization"] == f"Bearer {TOKEN}"
    assert a.requests[0][2]["X-Api-Key"] == API_KEY
    assert len(b.requests) == 1 and not carries_secrets(b.requests[0][2]), b.requests


def test_link_header_pagination_keeps_credentials_on_the_origin_only(servers):
    # given pages 1-2 on the store (relative Link) and page 3 on another origin (absolute Link)
    a, b = servers
    a.routes[("GET", "/members", "1")] = lambda h: answer(h, 200, {"data": [row(1)]},
                                                          {"Link": '</members?page=2>; rel="next"'})
    a.routes[("GET", "/members", "2")] = lambda h: answer(
        h, 200, {"data": [row(2)]}, {"Link": f'<{b.url}/members?page=3>; rel="next", </members?page=1>; rel="first"'})
    b.routes[("GET", "/members")] = lambda h: answer(h, 200, {"data": [row(3)]})
    store = connector(a.url)
    rows = list(store.retrieve(members({"type": "link_header"}), {"email": ["p@example.com"]}))
    store.close()
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert [r[1] for r in a.requests] == ["/members?email=p%40example.com", "/members?page=2"]
    assert all(r[2]["Authorization"] == f"Bearer {TOKEN}" for r in a.requests)
    assert [r[1] for r in b.requests] == ["/members?page=3"] and not carries_secrets(b.requests[0][2])


def test_cursor_pagination_reads_every_page(servers):
    a, _b = servers
    pages = {None: ([row(1), row(2)], "c2"), "c2": ([row(3)], "c3"), "c3": ([row(4)], None)}

    def listing(h):
        cursor = parse_qs(urlsplit(h.path).query).get("cursor", [None])[0]
        data, nxt = pages[cursor]
        return answer(h, 200, {"data": data, "meta": {"next_cursor": nxt}})

    a.routes[("GET", "/members")] = listing
    store = connector(a.url)
    rows = list(store.retrieve(members({"type": "cursor", "param": "cursor", "next": "meta.next_cursor"}),
                               {"email": ["p@example.com"]}))
    store.close()
    assert [r["id"] for r in rows] == [1, 2, 3, 4] and len(a.requests) == 3


def test_a_redirect_to_another_origin_is_followed_without_credentials_and_writes_are_refused(servers):
    a, b = servers
    a.routes[("GET", "/members")] = lambda h: answer(h, 302, None, {"Location": f"{b.url}/moved?email=x"})
    b.routes[("GET", "/moved")] = lambda h: answer(h, 200, {"data": [row(7)]})
    a.routes[("DELETE", "/members/7")] = lambda h: answer(h, 307, None, {"Location": f"{b.url}/members/7"})
    b.routes[("DELETE", "/members/7")] = lambda h: answer(h, 204)
    store = connector(a.url)
    # a read that is redirected elsewhere is asked there without the credentials
    rows = list(store.retrieve(members(), {"email": ["p@example.com"]}))
    assert [r["id"] for r in rows] == [7]
    assert [r[1] for r in b.requests] == ["/moved?email=x"] and not carries_secrets(b.requests[0][2])
    # a delete redirected elsewhere is refused: nothing is sent there
    from dsr.masking import RowPlan

    with pytest.raises(StoreError, match="another origin"):
        store.delete(members(), [RowPlan(key={"id": 7}, delete=True, values={}, original=rows[0])])
    store.close()
    assert [r[0] for r in b.requests] == ["GET"]


def test_a_same_origin_redirect_keeps_the_credentials(servers):
    a, _b = servers
    a.routes[("GET", "/members")] = lambda h: answer(h, 301, None, {"Location": "/v2/members?email=p%40example.com"})
    a.routes[("GET", "/v2/members")] = lambda h: answer(h, 200, {"data": [row(1)]})
    store = connector(a.url)
    assert [r["id"] for r in store.retrieve(members(), {"email": ["p@example.com"]})] == [1]
    store.close()
    assert [r[1] for r in a.requests] == ["/members?email=p%40example.com", "/v2/members?email=p%40example.com"]
    assert all(r[2]["Authorization"] == f"Bearer {TOKEN}" for r in a.requests)


@pytest.mark.parametrize("base_url,kind", [
    ("http://169.254.169.254/latest", "link-local"), ("http://10.0.0.1/api", "private"),
    ("http://[fd00::1]/", "private"), ("http://2130706433/", "loopback"),
])
def test_a_store_on_an_internal_address_is_refused_by_default(settings, base_url, kind):
    settings.MAMORU_OUTBOUND_ALLOW_PRIVATE = False
    store = connector_class("http")(store_key="meta", settings={"base_url": base_url, "token": TOKEN})
    with pytest.raises(StoreError, match=f"a {kind} address: outbound requests to it are refused"):
        store.test_connection()
    store.close()


def test_a_loopback_store_answers_only_when_allowed(settings, servers):
    settings.MAMORU_OUTBOUND_ALLOW_PRIVATE = False
    a, _b = servers
    a.routes[("GET", "/")] = lambda h: answer(h, 200, {"ok": True})
    url = f"http://localhost:{a.port}"
    refused = connector_class("http")(store_key="local", settings={"base_url": url, "token": TOKEN})
    with pytest.raises(StoreError, match="loopback"):
        refused.test_connection()
    assert a.requests == []
    allowed = connector(url, allow_internal_hosts="true")  # as ${ENV} resolves it: a string
    assert "HTTP 200" in allowed.test_connection()
    refused.close()
    allowed.close()


def test_retry_after_is_honoured_and_shared_by_every_worker(settings, servers):
    settings.MAMORU_OUTBOUND_MAX_WAIT = 5
    a, _b = servers
    answers = iter([(429, {"Retry-After": "1"}), (200, {}), (503, {"Retry-After": "30"}), (200, {})])

    def health(h):
        status, headers = next(answers)
        return answer(h, status, {"ok": status == 200}, headers)

    a.routes[("GET", "/")] = health
    key = f"api-{uuid.uuid4().hex[:8]}"
    first = connector(a.url, key)
    # a short Retry-After is waited for and the request sent again
    assert "HTTP 200" in first.test_connection()
    assert len(a.requests) == 2
    # a long one gives the node back to be retried not sooner than asked …
    with pytest.raises(StoreUnavailable, match="HTTP 503") as unavailable:
        first.test_connection()
    assert unavailable.value.retry_after == 30
    # … and holds another worker's requests to the same store without sending them
    second = connector(a.url, key)
    with pytest.raises(StoreUnavailable, match="wait 30 s") as held:
        second.test_connection()
    assert held.value.retry_after >= 25 and len(a.requests) == 3
    # another store is not held
    other = connector(a.url)
    assert "HTTP 200" in other.test_connection() and len(a.requests) == 4
    for c in (first, second, other):
        c.close()


def test_an_exhausted_rate_limit_header_pauses_the_store(settings, servers):
    settings.MAMORU_OUTBOUND_MAX_WAIT = 5
    a, _b = servers
    a.routes[("GET", "/")] = lambda h: answer(h, 200, {"ok": True},
                                              {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "40"})
    key = f"api-{uuid.uuid4().hex[:8]}"
    assert "HTTP 200" in connector(a.url, key).test_connection()
    with pytest.raises(StoreUnavailable, match="wait 40 s"):
        connector(a.url, key).test_connection()
    assert len(a.requests) == 1


WORKER = """
import json, os, sys, time
import django
django.setup()
from dsr.connectors import connector_class
store = connector_class("http")(store_key=os.environ["STORE_KEY"], settings={
    "base_url": os.environ["STORE_URL"], "token": "t", "allow_internal_hosts": True,
    "rate_limit_per_second": 10})
store.test_connection()  # connect once before the start (not counted below)
taken = getattr(store.rate, "taken", [])
taken.clear()
print("ready", flush=True)
go = os.environ["GO_FILE"]
while not os.path.exists(go):
    time.sleep(0.01)
for _ in range(int(os.environ["REQUESTS"])):
    store.test_connection()
print(json.dumps(taken), flush=True)
"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cache", ["database", pytest.param("redis", marks=pytest.mark.redis)])
def test_two_processes_share_one_rate_per_store(cache, servers, tmp_path):
    """Two worker processes send 12 requests each to one store limited to 10/s: every request
    takes its own slot of the shared schedule (no slot twice), so together they take >= 2.3 s.
    Counted apart (each process alone), both would take the same slots and finish in ~1.1 s."""
    if cache == "redis":
        server_required("redis")
    a, _b = servers
    arrivals: list[float] = []

    def health(h):
        arrivals.append(time.monotonic())
        return answer(h, 200, {"ok": True})

    a.routes[("GET", "/")] = health
    go = tmp_path / "go"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "governance.settings", "PYTHONUNBUFFERED": "1",
           "MAMORU_VAR_DIR": str(django_settings.VAR_DIR),
           "DATABASE_URL": database_url(connections["default"].settings_dict),
           "MAMORU_KEYSTORE_URL": database_url(connections["keystore"].settings_dict),
           "STORE_KEY": f"shared-{uuid.uuid4().hex[:8]}", "STORE_URL": a.url, "GO_FILE": str(go),
           "REQUESTS": "12"}
    if cache == "redis":
        env["CACHE_URL"] = REDIS_URL.rsplit("/", 1)[0] + "/10"
    else:
        env.pop("CACHE_URL", None)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for proc in procs:
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.stderr.read()[-3000:]
        arrivals.clear()
        go.touch()
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    errors = [err[-2000:] for _, err in outputs]
    assert len(arrivals) == 24, errors
    # spaced by the shared schedule: 23 gaps of 0.1 s (delays can only lengthen it; the margin
    # covers a first request sent late)
    assert arrivals[-1] - arrivals[0] >= 1.6, errors
    slots = [tuple(slot) for out, _ in outputs for slot in json.loads(out.strip().splitlines()[-1])]
    assert len(slots) == 24 and len(set(slots)) == 24, slots
