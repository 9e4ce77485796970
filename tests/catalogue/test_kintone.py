"""kintone from the catalogue, end to end against the kintone emulator (a query with "like",
pages written into the query as "limit … offset …", records deleted)."""

from __future__ import annotations

import pytest

from tests.catalogue.conftest import SIMILAR, STORED, add_store, package, profile, run
from tests.emulators.kintone import KintoneEmulator

pytestmark = pytest.mark.django_db

TOKEN = "kintone-token"


def test_kintone_access_and_erasure(workspaces, mailoutbox, emulator):
    app = KintoneEmulator(app=7, api_token=TOKEN)
    app.page_size_cap = 2  # "like" also matches xsubject.person@…: six rows, three pages
    server = emulator(app)
    mine = [app.add_record(email=STORED, name="主体 太郎", company="株式会社サンプル", postal_code="〒150-0002",
                           address="東京都渋谷区渋谷1-2-3", notes=f"問い合わせ {i}") for i in range(5)]
    for email in SIMILAR:
        app.add_record(email=email, name="別人 花子")
    add_store("kintone", server.url, params={"subdomain": "example", "app": "7"}, secrets={"api_token": TOKEN})
    profile(workspaces[0])

    # access: exactly the five records with the person's address ("like" also matched the similar
    # ones; the connector keeps only the same address), read across offset pages
    files = package(run(workspaces[0], mailoutbox, "access"))
    found = files["kintone/records.json"]
    assert sorted(r["id"] for r in found) == sorted(r["$id"]["value"] for r in mine)
    assert {r["email"] for r in found} == {STORED} and {r["postal_code"] for r in found} == {"〒150-0002"}
    queries = [r[3]["query"] for r in app.requests if r[2] == "/k/v1/records.json" and r[1] == "GET"]
    assert any("offset 2" in q for q in queries) and any("offset 4" in q for q in queries)

    # a 429 (kintone sends no Retry-After) is retried by the node's backoff, not failed
    app.rate_limit_after = len([r for r in app.requests if r[4]]) + 1
    app.rate_limit_count = 1
    request = run(workspaces[0], mailoutbox, "erasure")
    assert app.rate_limited and request.events.filter(kind="node_retry").exists()

    # erasure: the five records deleted; the similar people's records untouched
    assert app.deleted == {int(r["$id"]["value"]) for r in mine}
    assert sorted(app.emails()) == sorted(SIMILAR)
    assert request.events.filter(kind="erasure_verified").exists()
