"""No personal data in log lines: identities in query strings are redacted by the web server's
access log (the gunicorn that ``run_demo`` starts) and by Django's logging configuration."""

from __future__ import annotations

import io
import logging
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
from governance.logredact import RedactFilter

EMAIL = "hanako.sato@example.jp"
PHONE = "09012345678"
URLS = [
    f"/api/v1/consent/check?purpose=analytics&identity_kind=email&identity_value={EMAIL}",
    f"/api/v1/consent/state?identity_kind=phone&identity_value={PHONE}&workspace=shop-jp",
    f"/api/v1/profiles/?email={EMAIL.replace('@', '%40')}&workspace=shop-jp",
    f"/admin/subjects/profile/?q={EMAIL}",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not start")


def test_the_demo_web_servers_access_log_holds_no_identity(tmp_path: Path):
    # given: the web server exactly as `manage.py run_demo` starts it, logging to a file
    port, log = _free_port(), tmp_path / "access.log"
    argv = web_argv(python=sys.executable, bind=f"127.0.0.1:{port}", workers=1, access_log=str(log))
    env = {**os.environ, "MAMORU_VAR_DIR": str(tmp_path / "var")}
    env.pop("DATABASE_URL", None)
    env.pop("MAMORU_KEYSTORE_URL", None)
    proc = subprocess.Popen(argv, env=env, cwd=Path(__file__).resolve().parents[2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port, proc)
        # when: identities arrive in query strings (and in a referer)
        for url in URLS:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{url}",
                                             headers={"Referer": f"https://shop.example/?email={EMAIL}"})
            try:
                # generous: the first request waits for the worker to boot (a busy machine)
                urllib.request.urlopen(request, timeout=120).close()  # noqa: S310 - loopback
            except urllib.error.HTTPError as exc:
                exc.close()
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    # then: every request is logged, none with its identity
    lines = log.read_text().splitlines()
    assert len(lines) >= len(URLS)  # (+ the admin's redirect to its login page)
    text = "\n".join(lines)
    for secret in (EMAIL, EMAIL.replace("@", "%40"), PHONE):
        assert secret not in text
    assert "identity_value=[redacted]" in text and "email=[redacted]" in text and "q=[redacted]" in text
    assert "purpose=analytics" in text and "workspace=shop-jp" in text  # the rest stays readable


def _console_handler() -> logging.Handler:
    handlers = [h for h in logging.getLogger().handlers if any(isinstance(f, RedactFilter) for f in h.filters)]
    assert handlers, "the root console handler has no RedactFilter (settings.LOGGING)"
    return handlers[0]


@pytest.mark.parametrize("logger_name", ["django.server", "django.request"])
def test_djangos_request_logging_holds_no_identity(logger_name):
    # given: the console handler from settings.LOGGING, writing into a buffer
    handler = _console_handler()
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    try:
        # when: the request line is logged as runserver does, and an error names the caller
        logging.getLogger(logger_name).warning(
            '"%s" %s %s', f"GET /api/v1/consent/check?identity_value={EMAIL}&purpose=analytics HTTP/1.1", 400, 88)
        logging.getLogger(logger_name).warning("Lookup failed for %s", EMAIL)
    finally:
        handler.setStream(old)
    # then
    out = buffer.getvalue()
    assert EMAIL not in out
    assert "identity_value=[redacted]&purpose=analytics HTTP/1.1" in out
    assert out.count("[redacted]") == 2


# --- free text: reasons and notes -------------------------------------------------------------

PHONE_TEXT = "090-1234-5678"
REASON = f"Call from {EMAIL} ({PHONE_TEXT}) about ticket 4521"


def _assert_protected(plain: str, sealed: dict | None) -> None:
    from audit.freetext import freetext_reveal

    assert EMAIL not in plain and PHONE_TEXT not in plain
    assert "<EMAIL_ADDRESS>" in plain and "<PHONE_NUMBER>" in plain and "ticket 4521" in plain
    assert freetext_reveal(sealed) == REASON


def _row_text(model, pk) -> str:
    import json

    return json.dumps(list(model.objects.filter(pk=pk).values()), default=str)


@pytest.mark.django_db
def test_reveal_reasons_are_stored_masked_and_sealed(api_client, role_users, workspaces):
    from audit.models import AuditEntry
    from governance.subjects.services import IdentityInput, profile_upsert

    profile = profile_upsert(workspace=workspaces[0], identities=[IdentityInput("email", "p@example.jp")],
                             attributes={"full_name": "佐藤 花子"}, actor=None).profile
    api_client.force_authenticate(role_users["dpo"])
    # when: reveals through the API and through the admin, each with a reason holding an e-mail and phone
    response = api_client.post(f"/api/v1/profiles/{profile.pk}/reveal/", {"fields": ["full_name"], "reason": REASON},
                               format="json")
    assert response.status_code == 200
    from tests.accounts import OtpVerifiedClient

    admin = OtpVerifiedClient()
    admin.force_login(role_users["dpo"])
    assert admin.post(f"/admin/subjects/profile/{profile.pk}/reveal/",
                      {"fields_to_reveal": ["full_name"], "reason": REASON}).status_code == 200
    # then: both entries hold the masked text in the column and the full text only sealed
    entries = [e for e in AuditEntry.objects.filter(object_pk=str(profile.pk)) if "ticket 4521" in e.reason]
    assert len(entries) == 2
    for entry in entries:
        _assert_protected(entry.reason, entry.additional_data["reason_enc"])
        assert EMAIL not in _row_text(AuditEntry, entry.pk)
    # and: the profile's History page shows them masked; the DPO may show the full text (audited)
    history = f"/admin/subjects/profile/{profile.pk}/history/"
    page = admin.get(history).content.decode()
    assert "ticket 4521" in page and EMAIL not in page
    reads = AuditEntry.objects.filter(fields=["reason"]).count()
    assert EMAIL in admin.get(history + "?reveal_reasons=1").content.decode()
    assert AuditEntry.objects.filter(fields=["reason"]).count() == reads + 2


@pytest.mark.django_db
def test_dsr_denial_reasons_are_stored_masked_and_sealed(api_client, role_users, workspaces):
    from audit.models import AuditEntry
    from dsr.models import DataSubjectRequest

    created = api_client.post("/api/v1/dsr/requests", {"workspace": "shop-jp", "request_type": "access",
                                                       "email": "someone@example.jp"}, format="json")
    pk = created.json()["id"]
    api_client.force_authenticate(role_users["dpo"])
    response = api_client.post(f"/api/v1/dsr/requests/{pk}/deny", {"reason": REASON}, format="json")
    assert response.status_code == 200
    request = DataSubjectRequest.objects.get(pk=pk)
    assert EMAIL not in request.rejection_reason and "<EMAIL_ADDRESS>" in request.rejection_reason
    entry = AuditEntry.objects.filter(object_pk=str(pk), reason__startswith="rejected").get()
    assert EMAIL not in entry.reason
    from audit.freetext import freetext_reveal

    assert freetext_reveal(entry.additional_data["reason_enc"]) == f"rejected: {REASON}"


@pytest.mark.django_db
def test_anomaly_acknowledgement_notes_are_stored_masked_and_sealed(api_client, role_users):
    import datetime as dt

    from django.utils import timezone

    from audit.freetext import freetext_reveal
    from audit.models import AnomalyAlert, AnomalyRule, AuditEntry

    rule = AnomalyRule.objects.create(name="reads", kind="reads_per_hour", threshold=1)
    now = timezone.now()
    alert = AnomalyAlert.objects.create(rule=rule, kind=rule.kind, actor_label="x", window_start=now,
                                        window_end=now + dt.timedelta(hours=1), count=5, threshold=1)
    api_client.force_authenticate(role_users["dpo"])
    response = api_client.post(f"/api/v1/audit/alerts/{alert.pk}/acknowledge", {"note": REASON}, format="json")
    assert response.status_code == 200, response.content
    alert.refresh_from_db()
    assert EMAIL not in alert.acknowledge_note and "<EMAIL_ADDRESS>" in alert.acknowledge_note
    entry = AuditEntry.objects.filter(object_pk=str(alert.pk), reason__startswith="anomaly").get()
    assert EMAIL not in entry.reason
    assert freetext_reveal(entry.additional_data["reason_enc"]) == f"anomaly alert acknowledged: {REASON}"


@pytest.mark.django_db
def test_consent_event_notes_hold_no_plaintext_pii(workspaces):
    from rest_framework.test import APIClient

    from consent.demo import purposes_seed
    from consent.models import ConsentEvent, KeyKind, Site
    from consent.services import site_key_create

    purposes = purposes_seed()
    site = Site.objects.create(workspace=workspaces[0], slug="shop", name="Shop")
    site.purposes.set(purposes)
    _key, secret = site_key_create(site=site, kind=KeyKind.SECRET)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = client.post("/api/v1/consent/events", {"browser_id": "browser-0001", "purpose": "analytics",
                                                      "state": "given", "note": REASON}, format="json")
    assert response.status_code in (200, 201), response.content
    event = ConsentEvent.objects.get()
    assert EMAIL not in event.note and "<EMAIL_ADDRESS>" in event.note and "ticket 4521" in event.note
