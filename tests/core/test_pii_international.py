"""Identities as people really write them stay out of logs and stored free text: internationalised
e-mail addresses (RFC 6531 local parts, IDN domains), quoted local parts, zero-width splits,
full-width digits, phones in any query field, the Basic-auth user, gunicorn's error log."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from governance.demo.management.commands.run_demo import web_argv
from tests.core.test_pii_in_logs import _free_port, _wait

# Raw request lines and headers a client may send; gunicorn rejects them and says why in its error log.
RAW_REQUESTS = [
    "GET /api/v1/profiles/?email=taro@例え.jp HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "GET /api/v1/consent/check?purpose=analytics&identity_value=stanisław.wójcik@wp.pl HTTP/1.1\r\n"
    "Host: x\r\n\r\n".encode(),
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header leak42@example.jp\r\n\r\n",
    b"GET / yamada@example.jp HTTP/1.1\r\nHost: x\r\n\r\n",
]
# Requests gunicorn accepts; the access log shows them.
URLS = [
    "/api/v1/consent/check?purpose=analytics&tel=090-1234-5678&mobile=%2B819087654321",
    "/api/v1/consent/receipts/hiro%40%E4%BE%8B%E3%81%88.jp",
    "/api/v1/profiles/?kenji%40%E4%BE%8B%E3%81%88.jp&workspace=shop-jp",
]
REFERER = "https://shop.example/contact?tel=03-5555-0199"
SECRETS = [
    # identities in every form a log could hold them: plain, percent-encoded, latin-1-decoded, escaped
    "taro", "例え", "%E4%BE%8B", "stanis", "jcik", "w\\xc3\\xb3jcik", "wÃ³jcik", "leak42", "leak30", "yamada",
    "hiro", "kenji", "1234-5678", "9087654321", "5555-0199",
]


def _send_raw(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(payload)
        try:
            sock.recv(4096)
        except OSError:
            pass


def test_the_demo_web_servers_logs_hold_no_international_identity(tmp_path: Path):
    # given: the web server exactly as `manage.py run_demo` starts it (error log on stderr)
    port, access, errors = _free_port(), tmp_path / "access.log", tmp_path / "error.log"
    argv = web_argv(python=sys.executable, bind=f"127.0.0.1:{port}", workers=1, access_log=str(access))
    env = {**os.environ, "MAMORU_VAR_DIR": str(tmp_path / "var")}
    env.pop("DATABASE_URL", None)
    env.pop("MAMORU_KEYSTORE_URL", None)
    with errors.open("wb") as stderr:
        proc = subprocess.Popen(argv, env=env, cwd=Path(__file__).resolve().parents[2],
                                stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            _wait(port, proc)
            # when: malformed requests quote identities (gunicorn's error log) ...
            for payload in RAW_REQUESTS:
                _send_raw(port, payload)
            # ... and accepted ones carry them in a Basic-auth user, phone fields, an IDN path or bare key
            credentials = base64.b64encode(b"leak30@example.jp:pw").decode()
            for url in URLS:
                request = urllib.request.Request(f"http://127.0.0.1:{port}{url}", headers={
                    "Referer": REFERER, "Authorization": f"Basic {credentials}"})
                try:
                    urllib.request.urlopen(request, timeout=120).close()  # noqa: S310 - loopback
                except urllib.error.HTTPError as exc:
                    exc.close()
            time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    # then: gunicorn said why it rejected each malformed request, without the identity
    error_text = errors.read_text(encoding="utf-8", errors="backslashreplace")
    assert error_text.count("Invalid") >= len(RAW_REQUESTS), error_text
    # and: every accepted request is logged, without its identity, the user as "-"
    access_text = access.read_text(encoding="utf-8", errors="backslashreplace")
    assert len(access_text.splitlines()) >= len(URLS)
    for secret in SECRETS:
        assert secret not in error_text, (secret, error_text)
        assert secret not in access_text, (secret, access_text)
    assert "[redacted]" in error_text
    assert "127.0.0.1 - - [" in access_text
    assert "tel=[redacted]&mobile=[redacted]" in access_text and "purpose=analytics" in access_text
    assert "workspace=shop-jp" in access_text


# --- the same redaction on Django's side --------------------------------------------------------

@pytest.mark.parametrize("line", [
    "Invalid HTTP request line: 'GET /api/v1/consent/check?identity_value=stanisÅ\\x82aw.wÃ³jcik@wp.pl HTTP/1.1'",
    "Lookup failed for taro@例え.jp",
    "Lookup failed for hana\u200bko@exa\u200bmple.jp",
    "callback from tel ０９０－１２３４－５６７８",
    "GET /api/v1/consent/receipts/taro%40%E4%BE%8B.jp?mobile=%2B81-90-1234-5678 HTTP/1.1",
])
def test_djangos_log_filter_redacts_international_identities(line):
    import logging

    from governance.logredact import RedactFilter

    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "%s", (line,), None)
    RedactFilter().filter(record)
    message = record.getMessage()
    for secret in ("stanis", "jcik", "taro", "例え", "%E4%BE%8B", "hana", "mple", "１２３４", "1234"):
        assert secret not in message, message
    assert "[redacted]" in message


# --- free text: reasons and notes ---------------------------------------------------------------

FREE_TEXTS = {
    "taro@例え.jp": "IDN domain",
    "stanisław.wójcik@wp.pl": "UTF-8 local part",
    '"quoted local"@example.jp': "quoted local part",
    "hana\u200bko@exa\u200bmple.jp": "zero-width split",
    "ｓａｔｏ＠ｅｘａｍｐｌｅ．ｊｐ": "full-width address",
    "０９０－１２３４－５６７８": "full-width phone",
    "０３ー５５５５ー０１９９": "full-width phone, long-vowel dashes",
}


@pytest.mark.django_db
@pytest.mark.parametrize("identity", list(FREE_TEXTS))
def test_free_text_masks_international_identities_whole(identity):
    from audit.freetext import freetext_mask

    masked = freetext_mask(f"顧客 {identity} から電話、チケット 4521")
    assert masked.startswith("顧客 <") and masked.endswith("> から電話、チケット 4521"), masked
    for fragment in ("taro", "例え", "stanis", "jcik", "quoted", "hana", "mple", "ｓａｔｏ", "１２３４", "５５５５"):
        assert fragment not in masked, masked


@pytest.mark.django_db
def test_dsr_denial_reason_with_international_identities_is_masked_and_sealed(api_client, role_users):
    from audit.freetext import freetext_reveal
    from audit.models import AuditEntry
    from dsr.models import DataSubjectRequest

    reason = "Duplicate of stanisław.wójcik@wp.pl / taro@例え.jp (hana\u200bko@example.jp, ０９０－１２３４－５６７８)"
    created = api_client.post("/api/v1/dsr/requests", {"workspace": "shop-jp", "request_type": "access",
                                                       "email": "someone@example.jp"}, format="json")
    pk = created.json()["id"]
    api_client.force_authenticate(role_users["dpo"])
    assert api_client.post(f"/api/v1/dsr/requests/{pk}/deny", {"reason": reason}, format="json").status_code == 200
    stored = DataSubjectRequest.objects.get(pk=pk).rejection_reason
    assert stored == ("Duplicate of <EMAIL_ADDRESS> / <EMAIL_ADDRESS> (<EMAIL_ADDRESS>, <PHONE_NUMBER>)"), stored
    entry = AuditEntry.objects.filter(object_pk=str(pk), reason__startswith="rejected").get()
    assert "stanis" not in entry.reason and "例え" not in entry.reason
    assert freetext_reveal(entry.additional_data["reason_enc"]) == f"rejected: {reason}"
