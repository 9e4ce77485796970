"""Issue 13, finding 3: bad input answers a 4xx problem (API) or a form error (portal), in bounded
time, with nothing committed — never a 500, an HTML page or a request recorded as "code e-mailed"
when no mail left."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connections
from django.test import Client, TestCase

from dsr.models import DataSubjectRequest, RequestEvent, RequestStatus
from tests.accounts import OtpVerifiedClient
from tests.servers import database_url

ROOT = Path(__file__).resolve().parents[2]
DEEP = "[" * 1000 + "]" * 1000


def _problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/problem+json", response["Content-Type"]
    body = response.json()
    assert body["code"] == code and body["type"].endswith(code) and body["title"] and body["detail"], body
    return body


@pytest.fixture
def dpo(role_users) -> Client:
    client = OtpVerifiedClient()  # signed in with the second factor entered
    client.force_login(role_users["dpo"])
    return client


# --- NUL and other control characters in the query or path ---------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("url", [
    "/api/v1/profiles/?workspace=a%00b",
    "/api/v1/dsr/requests?status=a%00b",
    "/api/v1/dsr/requests?request_type=%01",
    "/api/v1/audit/alerts/?kind=a%1bb",
    "/api/v1/profiles/a%00b/",
])
def test_control_characters_in_the_query_or_path_are_refused(dpo, url):
    _problem(dpo.get(url), 400, "invalid_character")


@pytest.mark.django_db
def test_nul_in_the_consent_check_fast_path_is_refused(workspaces):
    from consent.models import KeyKind, Site
    from consent.services import site_key_create

    site = Site.objects.create(workspace=workspaces[0], slug="shop", name="Shop",
                               allowed_origins=["https://shop.example"])
    _key, secret = site_key_create(site=site, kind=KeyKind.SECRET)
    response = Client().get(
        "/api/v1/consent/check?purpose=analytics&browser_id=b-7f3a9c2e41xx&workspace=a%00b",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    _problem(response, 400, "invalid_character")


@pytest.mark.django_db
def test_the_refusal_speaks_the_callers_language(dpo):
    en = _problem(dpo.get("/api/v1/dsr/requests?status=a%00b"), 400, "invalid_character")
    ja = _problem(dpo.get("/api/v1/dsr/requests?status=a%00b", HTTP_ACCEPT_LANGUAGE="ja"), 400,
                  "invalid_character")
    assert ja["title"] != en["title"] and ja["title"].endswith("。")


@pytest.mark.django_db
def test_nul_in_a_page_query_is_a_plain_400(admin_client):
    response = admin_client.get("/admin/dsr/datasubjectrequest/?q=a%00b")
    assert response.status_code == 400


@pytest.mark.django_db
def test_tab_and_newline_in_a_query_value_stay_allowed(dpo):
    assert dpo.get("/api/v1/dsr/requests?status=a%09b%0A").status_code == 200


# --- malformed ids and unknown API paths ------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("url", [
    "/api/v1/profiles/abc/", "/api/v1/dsr/requests/not-a-uuid", "/api/v1/dsr/requests/1/status",
    "/api/v1/audit/exports/xyz", "/api/v1/audit/alerts/abc/acknowledge", "/api/v1/no-such-thing",
])
def test_malformed_ids_answer_a_problem_404(dpo, url):
    _problem(dpo.get(url), 404, "not_found")


@pytest.mark.django_db
def test_pages_keep_the_html_404(admin_client):
    response = admin_client.get("/privacy/no-such-page/x/y/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


# --- NUL in a JSON body, free-form objects included ---------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("details", [{"note": "a\u0000b"}, {"a\u0000": "b"}, {"purposes": [["x\u0000"]]}])
def test_nul_anywhere_in_a_json_body_is_refused(workspaces, details, mailoutbox):
    body = json.dumps({"workspace": "shop-eu", "request_type": "access", "email": "erika@example.de",
                       "details": details})
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post("/api/v1/dsr/requests", body, content_type="application/json")
    _problem(response, 400, "null_characters_not_allowed")
    assert DataSubjectRequest.objects.count() == 0 and mailoutbox == []


def test_an_escaped_backslash_before_u0000_is_text():
    from governance.api.parsers import json_loads

    assert json_loads('{"a": "\\\\u0000"}') == {"a": "\\u0000"}


# --- deep JSON outside the API: admin forms' JSON fields ---------------------------------------

@pytest.mark.django_db
def test_deep_json_in_an_admin_json_field_is_a_400_and_nothing_changes(workspaces):
    from django.contrib.auth import get_user_model

    from consent.models import Site

    site = Site.objects.create(workspace=workspaces[0], slug="shop", name="Shop",
                               allowed_origins=["https://shop.example"])
    root = get_user_model().objects.create_superuser("root", "root@example.jp", "x" * 16)
    client = OtpVerifiedClient(raise_request_exception=False)
    client.force_login(root)
    response = client.post(f"/admin/consent/site/{site.pk}/change/", {
        "workspace": workspaces[0].pk, "slug": "shop", "name": "Renamed", "allowed_origins": DEEP,
        "rate_limit_per_minute": 600, "_change_reason": "testing a deeply nested value",
    })
    assert response.status_code == 400
    site.refresh_from_db()
    assert site.name == "Shop" and site.allowed_origins == ["https://shop.example"]


# --- nested and oversized records in the PII scan ---------------------------------------------

@pytest.mark.django_db
def test_deeply_nested_scan_records_are_a_fast_400(dpo):
    record: dict = {}
    node = record
    for _ in range(900):
        node["a"] = {}
        node = node["a"]
    body = '{"records": [' + json.dumps(record) + "]}"
    started = time.monotonic()
    response = dpo.post("/api/v1/scan/", body, content_type="application/json")
    _problem(response, 400, "parse_error")
    assert len(response.content) < 1000  # a problem, not a traceback
    assert time.monotonic() - started < 30  # bounded, not a timing assertion on speed


@pytest.mark.django_db
def test_scan_records_with_too_many_values_are_a_413(dpo, settings):
    settings.MAMORU_PII_MAX_VALUES = 1000
    records = [{f"field{i}": f"value {i}" for i in range(600)}, {f"other{i}": "x" for i in range(600)}]
    response = dpo.post("/api/v1/scan/", {"records": records}, content_type="application/json")
    body = _problem(response, 413, "too_many_values")
    assert body["limit"] == 1000
    # within the limit: scanned
    response = dpo.post("/api/v1/scan/", {"records": records[:1]}, content_type="application/json")
    assert response.status_code == 200 and len(response.json()["results"]) == 1


# --- identities with bidi/control characters; mail that could not be sent ---------------------

@pytest.mark.django_db
@pytest.mark.parametrize("email", [
    "erika@exa\u202emple.de", "erika@example.de\u200f", "erika@exa\u2066mple.de", "erika@exa\u0000mple.de",
    "erika\u202e@example.de", "erika@exa\u0007mple.de",
])
def test_bidi_and_controls_in_an_email_are_a_400_and_nothing_is_committed(workspaces, email, mailoutbox):
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post("/api/v1/dsr/requests", {"workspace": "shop-eu", "request_type": "access",
                                                          "email": email}, content_type="application/json")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert DataSubjectRequest.objects.count() == 0 and RequestEvent.objects.count() == 0
    assert mailoutbox == []


@pytest.mark.django_db
def test_the_portal_refuses_bidi_in_an_email_with_a_form_error(workspaces, mailoutbox):
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post("/privacy/request/", {"request_type": "access", "workspace": "shop-eu",
                                                       "email": "erika@exa\u202emple.de"})
    assert response.status_code == 200 and b'class="error"' in response.content
    assert DataSubjectRequest.objects.count() == 0 and mailoutbox == []


class RefusingSmtp(socketserver.ThreadingTCPServer):
    """A loopback SMTP server that refuses every recipient (550), as for an address it cannot route."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RefusingSmtpHandler)
        self.refused: list[str] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()


class RefusingSmtpHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"220 loopback ESMTP\r\n")
        while line := self.rfile.readline():
            verb = line.decode("utf-8", "replace").split(" ", 1)[0].strip().upper()
            if verb == "EHLO":
                self.wfile.write(b"250-loopback\r\n250 SMTPUTF8\r\n")
            elif verb == "RCPT":
                self.server.refused.append(line.decode("utf-8", "replace")[8:].strip().strip("<>"))
                self.wfile.write(b"550 5.1.2 bad destination system address\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


@pytest.fixture
def refusing_smtp(settings):
    server = RefusingSmtp()
    settings.EMAIL_BACKEND = "governance.mail.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.server_address[1]
    yield server
    server.shutdown()
    server.server_close()


def _events(request: DataSubjectRequest) -> list[str]:
    return list(RequestEvent.objects.filter(request=request).order_by("id").values_list("kind", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_code_that_could_not_be_mailed_is_not_recorded_as_sent(workspaces, refusing_smtp):
    # given: a mail server that refuses the address
    # when (no test transaction: the mail goes after the commit, as in production)
    response = Client().post("/api/v1/dsr/requests", {"workspace": "shop-eu", "request_type": "access",
                                                      "email": "erika@example.de"}, content_type="application/json")
    # then: the caller is told, and the record says what happened
    _problem(response, 503, "mail_not_sent")
    assert refusing_smtp.refused == ["erika@example.de"]
    request = DataSubjectRequest.objects.get()
    assert "code_sent" not in _events(request) and "code_not_sent" in _events(request)
    assert request.status == RequestStatus.REJECTED and request.acknowledged_at is None
    assert request.code_hash == ""


@pytest.mark.django_db(transaction=True)
def test_a_mail_server_that_is_down_is_not_a_code_sent(workspaces, settings):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
    response = Client().post("/api/v1/dsr/requests", {"workspace": "shop-eu", "request_type": "erasure",
                                                      "email": "erika@example.de"}, content_type="application/json")
    _problem(response, 503, "mail_not_sent")
    assert "code_sent" not in _events(DataSubjectRequest.objects.get())


@pytest.mark.django_db(transaction=True)
def test_the_portal_shows_a_form_error_when_the_code_could_not_be_mailed(workspaces, refusing_smtp):
    response = Client().post("/privacy/request/", {"request_type": "access", "email": "erika@example.de",
                                                   "workspace": "shop-eu"})
    assert response.status_code == 200, response.status_code  # the form again, not a redirect
    assert "could not be e-mailed" in response.content.decode()
    assert all("code_sent" not in _events(r) for r in DataSubjectRequest.objects.all())


@pytest.mark.django_db
def test_a_sent_code_is_recorded_once_mailed(workspaces, mailoutbox):
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post("/api/v1/dsr/requests", {"workspace": "shop-eu", "request_type": "access",
                                                          "email": "erika@example.de"},
                                 content_type="application/json")
    assert response.status_code == 201 and len(mailoutbox) == 1
    request = DataSubjectRequest.objects.get()
    assert _events(request) == ["received", "code_sent"] and request.acknowledged_at is not None


# --- chunked request bodies -------------------------------------------------------------------

@pytest.mark.django_db
def test_a_chunked_body_where_the_server_cannot_end_it_is_a_411(workspaces):
    # Django's test client (like runserver) gives no wsgi.input_terminated: refuse, never read as empty.
    response = Client().generic(
        "POST", "/api/v1/dsr/requests", b"", content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH="",
    )
    _problem(response, 411, "length_required")
    assert DataSubjectRequest.objects.count() == 0


GUNICORN_PORT = int(os.environ.get("MAMORU_TEST_GUNICORN_PORT", "8121"))


@pytest.fixture
def gunicorn(transactional_db, workspaces):
    env = os.environ.copy()
    env.update({
        "DATABASE_URL": database_url(connections["default"].settings_dict),
        "MAMORU_KEYSTORE_URL": database_url(connections["keystore"].settings_dict),
        "MAMORU_VAR_DIR": str(settings.VAR_DIR), "DJANGO_SETTINGS_MODULE": "governance.settings",
        "MAMORU_API_MAX_BODY_BYTES": "4096",
    })
    log = open(Path(settings.VAR_DIR) / "test-gunicorn.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "governance.wsgi:application", "-b", f"127.0.0.1:{GUNICORN_PORT}",
         "-w", "1", "--timeout", "60"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", GUNICORN_PORT), timeout=1):
                break
        except OSError:
            assert proc.poll() is None, (Path(settings.VAR_DIR) / "test-gunicorn.log").read_text()[-3000:]
            time.sleep(0.2)
    yield f"http://127.0.0.1:{GUNICORN_PORT}"
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _raw_chunked_post(base: str, path: str, body: bytes, *, chunk: int = 7) -> tuple[int, bytes]:
    host, port = base.removeprefix("http://").split(":")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk])
                      for i in range(0, len(body), chunk))
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    head, _sep, rest = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_is_read_under_gunicorn(gunicorn):
    # given: a DSR submission sent in 7-byte chunks with no Content-Length (raw socket)
    body = json.dumps({"workspace": "shop-eu", "request_type": "access", "email": "Chunked.Person@example.de"})
    # when
    status, _answer = _raw_chunked_post(gunicorn, "/api/v1/dsr/requests", body.encode())
    # then: the body was read — the request exists (read as empty it would be a 400 "required")
    assert status == 201, _answer[:500]
    assert DataSubjectRequest.objects.get().email == "Chunked.Person@example.de"
    # and an httpx upload with a generator body (httpx sends it chunked)
    payload = json.dumps({"workspace": "nope", "request_type": "access", "email": "a@example.de"}).encode()
    response = httpx.post(f"{gunicorn}/api/v1/dsr/requests", content=iter([payload[:10], payload[10:]]),
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 404 and response.json()["code"] == "unknown_workspace"


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_over_the_limit_is_a_413_under_gunicorn(gunicorn):
    body = json.dumps({"workspace": "shop-eu", "request_type": "access", "email": "a@example.de",
                       "details": {"note": "x" * 5000}}).encode()
    response = httpx.post(f"{gunicorn}/api/v1/dsr/requests", content=iter([body[:1000], body[1000:]]),
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"
    assert DataSubjectRequest.objects.count() == 0
