"""``manage.py import_fides``: Fides datasets and SaaS configs round-trip into the data map.

The Fides files are ours (tests/fixtures/fides/, written in fideslang's documented format); the
elements marked UNMAPPABLE in them are exactly what the report must list. One imported SaaS config
then serves a real access and erasure request against a loopback emulator of its API.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import zipfile
from pathlib import Path
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from django.core.management import call_command

from audit.models import AuditEntry
from governance.datamap.graph import DataMapGraph
from governance.datamap.models import Collection, Field, Store

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fides"
PARAMS = ["--param", "username=anystring", "--param", "list_id=L1"]

# What the fixtures make unmappable on purpose: (file, dataset, collection, field, key).
UNMAPPABLE = {
    ("shop_postgres_dataset.yml", "shop_pg", "customer", "kids_club_member", "data_categories"),
    ("shop_postgres_dataset.yml", "shop_pg", "customer", "ga_client", "fides_meta.identity"),
    ("shop_postgres_dataset.yml", "shop_pg", "customer", "preferences.contact.backup_email",
     "fides_meta.identity"),
    ("shop_postgres_dataset.yml", "shop_pg", "customer", "card_token", "fides_meta.masking_strategy_override"),
    ("shop_postgres_dataset.yml", "shop_pg", "orders", "gift_message", "fides_meta.custom_request_field"),
    ("shop_postgres_dataset.yml", "shop_pg", "audit_log", "", "fides_meta.skip_processing"),
    ("mailing_saas_config.yml", "mailing_instance", "", "", "data_protection_request"),
    ("helpdesk_saas_config.yml", "helpdesk_instance", "organizations", "", "requests.read.param_values"),
}


def _import(*args: str) -> dict:
    out = io.StringIO()
    call_command("import_fides", str(FIXTURES), *PARAMS, "--offline", "--report", "json", *args, stdout=out)
    return json.loads(out.getvalue())


def _fields(store: str, collection: str) -> dict[str, Field]:
    return {f.name: f for f in Field.objects.filter(collection__store__key=store, collection__name=collection)}


def test_import_maps_collections_fields_categories_identities_references_and_order():
    # when the three Fides systems are imported
    report = _import()
    # then each is a store with its collections
    assert {s.key: s.connector_type for s in Store.objects.all()} == {
        "shop_pg": "sql", "mailing_instance": "http", "helpdesk_instance": "http"}
    assert sorted(Collection.objects.filter(store__key="shop_pg").values_list("name", flat=True)) == [
        "customer", "login", "orders", "payment_card"]  # audit_log: skip_processing
    customer = _fields("shop_pg", "customer")
    # categories (a fideslang child category is kept; the first of several wins, the rest described)
    assert customer["email"].category == "user.contact.email"
    assert customer["address"].category == "user.contact.address.street"
    assert "user.contact.address.postal_code" in customer["address"].description
    assert customer["religion"].category == "user.demographic.religious_belief"
    assert customer["kids_club_member"].category == ""
    # identities: email, phone_number -> phone, external_id -> customer_id in the store's namespace
    assert (customer["email"].identity, customer["phone"].identity) == ("email", "phone")
    assert (customer["id"].identity, customer["id"].namespace, customer["id"].primary_key) == (
        "customer_id", "shop_pg", True)
    assert customer["ga_client"].identity == ""
    # nested fields are one field, their paths kept in the description
    assert "preferences.contact.mobile" in customer["preferences"].description
    # masking override and length: random_string_rewrite with its own length
    assert (customer["name"].strategy, customer["name"].strategy_options) == ("random_rewrite", {"length": 12})
    # references: direction from on the field itself, direction to written on the other side
    assert _fields("shop_pg", "orders")["customer_id"].references == ["shop_pg.customer.id"]
    assert _fields("shop_pg", "payment_card")["customer_id"].references == ["shop_pg.customer.id"]
    # collection masking override delete -> delete_row on its personal fields
    assert _fields("shop_pg", "login")["ip"].strategy == "delete_row"
    # erase ordering and access ordering, used by the plan
    orders = Collection.objects.get(store__key="shop_pg", name="orders")
    assert orders.erase_after == ["shop_pg.payment_card"]
    assert Collection.objects.get(store__key="shop_pg", name="login").after == ["shop_pg.orders"]
    graph = DataMapGraph([s.to_spec() for s in Store.objects.all()])
    erasure = graph.erasure_order()
    assert erasure.index("shop_pg.payment_card") < erasure.index("shop_pg.orders")
    access = graph.access_order()
    assert access.index("shop_pg.orders") < access.index("shop_pg.login")
    assert "shop_pg.customer.religion" in report["special_categories"]
    # the SaaS configs: endpoints, auth, pagination, rate limit
    mailing = Store.objects.get(key="mailing_instance")
    assert mailing.connection["auth"] == {"type": "basic", "username": "{username}", "password": "{api_key}"}
    assert mailing.connection["api_key"] == "${MAILING_INSTANCE_API_KEY}"
    assert mailing.connection["rate_limit_per_second"] == 10.0
    members = Collection.objects.get(store=mailing, name="members").options
    assert members["lookup"] == {"path": "/3.0/search-members", "params": {"query": "{email_address}"},
                                 "rows": "exact_matches.members"}
    assert members["pagination"] == {"type": "offset", "param": "offset", "start": 0, "size_param": "count",
                                     "size": 2}
    assert members["update"] == {"method": "PUT", "path": "/3.0/lists/L1/members/{id}", "body_key": "merge_fields"}
    assert _fields("mailing_instance", "members")["email_address"].identity == "email"
    assert _fields("mailing_instance", "notes")["member_id"].references == ["mailing_instance.members.id"]
    notes = Collection.objects.get(store=mailing, name="notes").options
    assert notes["pagination"] == {"type": "cursor", "param": "after", "from_last_row": "id"}
    helpdesk = Store.objects.get(key="helpdesk_instance")
    assert helpdesk.connection["auth"]["type"] == "oauth2_client_credentials"
    assert helpdesk.connection["auth"]["scope"] == "read write"
    tickets = Collection.objects.get(store=helpdesk, name="tickets")
    assert tickets.options["pagination"] == {"type": "link_header"}
    assert tickets.after == ["helpdesk_instance.users"]
    assert Collection.objects.get(store=helpdesk, name="users").options["pagination"] == {
        "type": "link", "next": "next_page"}
    # and the report lists exactly the elements made unmappable, each with its path
    found = {(Path(e["file"]).name, e["dataset"], e["collection"], e["field"], e["key"]) for e in report["unmapped"]}
    assert found == UNMAPPABLE
    assert all(" → " in e["path"] for e in report["unmapped"])


def test_dry_run_writes_nothing_and_reports_as_text():
    entries = AuditEntry.objects.count()
    out = io.StringIO()
    call_command("import_fides", str(FIXTURES), *PARAMS, "--offline", "--dry-run", stdout=out)
    text = out.getvalue()
    assert Store.objects.count() == 0 and AuditEntry.objects.count() == entries
    assert "would import store shop_pg (sql): 4 collections" in text
    assert f"not mapped: {len(UNMAPPABLE)}" in text
    assert ("shop_postgres_dataset.yml → shop_pg → customer → card_token → "
            "fides_meta.masking_strategy_override: masking strategy 'aes_encrypt'") in text


def test_real_import_is_recorded_in_the_audit_chain():
    _import()
    notes = list(AuditEntry.objects.filter(reason__startswith="data map loaded from import_fides")
                 .values_list("reason", flat=True))
    assert len(notes) == 3
    assert all("shop_postgres_dataset.yml" in n for n in notes)


def test_secrets_from_the_environment_are_stored_encrypted(monkeypatch):
    monkeypatch.setenv("MAILING_INSTANCE_API_KEY", "key-from-env")
    _import("--secrets-from-env")
    mailing = Store.objects.get(key="mailing_instance")
    assert mailing.secret_values() == {"api_key": "key-from-env"}
    assert "api_key" not in mailing.connection
    raw = Store.objects.filter(key="mailing_instance").values_list("secrets", flat=True)[0]
    assert "key-from-env" not in str(raw)


# --- a real request against the imported mailing config --------------------------------------

API_KEY = "key-123"
SUBJECT = "subject.person@example.com"


class MailingEmulator:
    """The documented subset of the mailing API the Fides config describes (basic auth, offset
    search, cursor notes, PUT update, DELETE)."""

    def __init__(self):
        self.members = {
            "m1": {"id": "m1", "email_address": SUBJECT, "full_name": "Subject Person", "status": "subscribed",
                   "merge_fields": {"PHONE": "090-1234-5678"}},
            "m2": {"id": "m2", "email_address": "x" + SUBJECT, "full_name": "Near Miss", "status": "subscribed",
                   "merge_fields": {}},
            "m3": {"id": "m3", "email_address": "Subject.Person@Example.com", "full_name": "S. Person",
                   "status": "unsubscribed", "merge_fields": {}},
            "m4": {"id": "m4", "email_address": "other@example.com", "full_name": "Other", "status": "subscribed",
                   "merge_fields": {}},
            "m5": {"id": "m5", "email_address": SUBJECT, "full_name": "Subject P.", "status": "subscribed",
                   "merge_fields": {"BIRTHDAY": "01/02"}},
        }
        self.notes = {f"n{i}": {"id": f"n{i}", "member_id": m, "note": f"note {i}", "created_at": "2026-01-01"}
                      for i, m in enumerate(["m1", "m1", "m1", "m2", "m4", "m5"], start=1)}
        self.auth_headers: list[str | None] = []

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        header = environ.get("HTTP_AUTHORIZATION")
        self.auth_headers.append(header)
        expected = "Basic " + base64.b64encode(f"anystring:{API_KEY}".encode()).decode()
        if header != expected:
            return self._json(start_response, "401 Unauthorized", {"title": "API Key Invalid"})
        parts = path.strip("/").split("/")
        if parts == ["3.0", "ping"]:
            return self._json(start_response, "200 OK", {"health_status": "ok"})
        if parts == ["3.0", "search-members"] and method == "GET":
            needle = query.get("query", "").lower()
            found = [m for _, m in sorted(self.members.items()) if needle in m["email_address"].lower()]
            offset, count = int(query.get("offset", 0)), int(query.get("count", 10))
            return self._json(start_response, "200 OK",
                              {"exact_matches": {"members": found[offset:offset + count]}})
        if len(parts) == 4 and parts[:2] == ["3.0", "members"] and parts[3] == "notes" and method == "GET":
            rows = sorted((n for n in self.notes.values() if n["member_id"] == parts[2]), key=lambda n: n["id"])
            if query.get("after"):
                rows = [n for n in rows if n["id"] > query["after"]]
            return self._json(start_response, "200 OK", {"notes": rows[:int(query.get("count", 10))]})
        if len(parts) == 5 and parts[:2] == ["3.0", "lists"] and method == "PUT":
            member = self.members.get(parts[4])
            if member is None:
                return self._json(start_response, "404 Not Found", {"title": "Resource Not Found"})
            body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
            member.update(body.get("merge_fields", {}))
            return self._json(start_response, "200 OK", member)
        if len(parts) == 3 and parts[1] in {"members", "notes"} and method == "DELETE":
            table = self.members if parts[1] == "members" else self.notes
            if table.pop(parts[2], None) is None:
                return self._json(start_response, "404 Not Found", {"title": "Resource Not Found"})
            start_response("204 No Content", [])
            return [b""]
        return self._json(start_response, "404 Not Found", {"title": "Resource Not Found"})

    @staticmethod
    def _json(start_response, status: str, body: dict):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture
def mailing_api():
    app = MailingEmulator()
    server = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, server.server_address[1]
    server.shutdown()
    server.server_close()


def _package(request) -> dict[str, str]:
    from dsr.package import package_stream

    data = b"".join(package_stream(package=request.package))
    archive = zipfile.ZipFile(io.BytesIO(data))
    return {name: archive.read(name).decode("utf-8") for name in archive.namelist()}


def _import_mailing(tmp_path, port: int, monkeypatch) -> None:
    # The emulator speaks plain HTTP on loopback; the config is otherwise imported as written.
    for name in ("mailing_saas_config.yml", "mailing_dataset.yml"):
        text = (FIXTURES / name).read_text(encoding="utf-8").replace("protocol: https", "protocol: http")
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.setenv("MAILING_INSTANCE_API_KEY", API_KEY)
    call_command("import_fides", str(tmp_path), *PARAMS, "--param", f"domain=127.0.0.1:{port}",
                 "--secrets-from-env", "--allow-internal-hosts", stdout=io.StringIO())


def test_imported_saas_config_serves_access_and_erasure(tmp_path, monkeypatch, mailing_api, workspaces,
                                                       mailoutbox):
    from dsr.execution import run_inline
    from dsr.models import RequestStatus
    from tests.dsr.conftest import subject_profile, submit_verified

    app, port = mailing_api
    _import_mailing(tmp_path, port, monkeypatch)
    subject_profile(workspaces[0], email=SUBJECT)
    # when the subject asks for their data
    request = submit_verified(workspaces[0], mailoutbox, "access", email=SUBJECT)
    run_inline(request)
    request.refresh_from_db()
    # then both endpoints answered exactly their records, across pages
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    files = _package(request)
    members = json.loads(files["mailing_instance/members.json"])
    assert sorted(m["id"] for m in members) == ["m1", "m3", "m5"]
    notes = json.loads(files["mailing_instance/notes.json"])
    assert sorted(n["id"] for n in notes) == ["n1", "n2", "n3", "n6"]
    assert all(h and h.startswith("Basic ") for h in app.auth_headers)
    # when they ask for erasure
    erasure = submit_verified(workspaces[0], mailoutbox, "erasure", email=SUBJECT)
    run_inline(erasure)
    erasure.refresh_from_db()
    # then the emulator holds none of their records and everyone else's
    assert erasure.status == RequestStatus.COMPLETED, erasure.attention_reason
    assert sorted(app.members) == ["m2", "m4"]
    assert sorted(app.notes) == ["n4", "n5"]


class _TokenApi:
    """An OAuth2 client-credentials API: /oauth/token issues tokens, /things wants the newest."""

    def __init__(self):
        self.issued: list[str] = []
        self.seen: list[tuple[str, str | None]] = []

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        header = environ.get("HTTP_AUTHORIZATION")
        self.seen.append((path, header))
        if path == "/oauth/token":
            form = parse_qs(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode())
            if form.get("client_secret") != ["s3cret"] or form.get("grant_type") != ["client_credentials"]:
                return MailingEmulator._json(start_response, "401 Unauthorized", {"error": "invalid_client"})
            self.issued.append(f"tok{len(self.issued) + 1}")
            return MailingEmulator._json(start_response, "200 OK", {"access_token": self.issued[-1]})
        if header != f"Bearer {self.issued[-1] if self.issued else ''}" or len(self.issued) < 2:
            return MailingEmulator._json(start_response, "401 Unauthorized", {"error": "expired"})
        return MailingEmulator._json(start_response, "200 OK", {"ok": True})


def _serve(app):
    server = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_oauth2_client_credentials_token_refreshed_after_401_and_kept_to_its_origin():
    import httpx

    from dsr.connectors.http_auth import StoreAuth

    api, other = _TokenApi(), _TokenApi()
    servers = [_serve(api), _serve(other)]
    try:
        base = f"http://127.0.0.1:{servers[0].server_address[1]}"
        auth = StoreAuth({"type": "oauth2_client_credentials", "token_path": "/oauth/token",
                          "client_id": "{client_id}", "client_secret": "{client_secret}"},
                         settings={"client_id": "mamoru", "client_secret": "s3cret"}, base_url=base)
        with httpx.Client(auth=auth) as client:
            # the first token is refused as expired: a new one is fetched once and the call repeated
            assert client.get(f"{base}/things").json() == {"ok": True}
            assert api.issued == ["tok1", "tok2"]
            assert [p for p, _ in api.seen] == ["/oauth/token", "/things", "/oauth/token", "/things"]
            # another origin never sees the token
            client.get(f"http://127.0.0.1:{servers[1].server_address[1]}/things")
        assert other.seen == [("/things", None)]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
