"""Request ids: made here unless a trusted proxy sent one, answered, in log lines, in tasks."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.test import override_settings

from governance.logredact import RedactFilter
from governance.observability.logformat import JsonFormatter, RequestIdFilter


def test_a_new_id_is_made_and_returned(client):
    # when
    first = client.get("/healthz")
    second = client.get("/healthz", HTTP_X_REQUEST_ID="chosen-by-client")
    # then: each request gets its own id; a client's header is not believed
    assert len(first["X-Request-ID"]) == 32
    assert second["X-Request-ID"] not in ("chosen-by-client", first["X-Request-ID"])


@override_settings(MAMORU_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_the_id_of_a_trusted_proxy_is_kept(client):
    # when
    trusted = client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a:42", REMOTE_ADDR="10.1.2.3")
    untrusted = client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a:42", REMOTE_ADDR="192.0.2.9")
    malformed = client.get("/healthz", HTTP_X_REQUEST_ID="x y\"<script>", REMOTE_ADDR="10.1.2.3")
    # then
    assert trusted["X-Request-ID"] == "lb-7f3a:42"
    assert untrusted["X-Request-ID"] != "lb-7f3a:42"
    assert malformed["X-Request-ID"] != "x y\"<script>" and len(malformed["X-Request-ID"]) == 32


def _json_line(record: logging.LogRecord) -> dict:
    for log_filter in (RequestIdFilter(), RedactFilter()):
        log_filter.filter(record)
    return json.loads(JsonFormatter().format(record))


def test_json_log_lines_are_redacted_like_text_lines():
    # given: a message, an extra field and a traceback that quote identities
    try:
        raise ValueError("no profile for taro@例え.jp / +81 90-1234-5678")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "django.request", logging.ERROR, __file__, 1,
        "GET /api/v1/consent/check?email=%s failed", ("hanako@example.com",), exc_info,
    )
    record.lookup = "stanisław.wójcik@wp.pl"
    # when: logged outside any request (an earlier test's unclosed streamed response may have
    # left its id in this thread's context)
    from governance.observability.requestid import request_id_var

    token = request_id_var.set(None)
    try:
        line = _json_line(record)
    finally:
        request_id_var.reset(token)
    # then
    dumped = json.dumps(line, ensure_ascii=False)
    for identity in ("hanako@example.com", "taro@例え.jp", "1234-5678", "stanisław.wójcik@wp.pl"):
        assert identity not in dumped, line
    assert line["level"] == "ERROR" and line["logger"] == "django.request"
    assert "[redacted]" in line["message"] and "ValueError" in line["exc_info"]
    assert line["request_id"] == "-"


@pytest.mark.django_db
def test_log_lines_of_a_request_carry_its_id(client, caplog):
    # given: a view that logs (an unknown API path logs a "Not Found" warning)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/api/v1/no-such-thing")
    # then
    request_id = response["X-Request-ID"]
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records, caplog.text
    line = json.loads(JsonFormatter().format(records[-1]))
    assert line["request_id"] == request_id


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_by_a_request_logs_and_audits_with_its_id(live_worker, api_client, role_users):
    from audit.models import AuditEntry, AuditExport

    # given
    api_client.force_authenticate(role_users["dpo"])
    # when: a request that enqueues a background export, picked up by a real worker
    response = api_client.post(
        "/api/v1/audit/exports/", {"report": "access_log", "format": "jsonl", "filters": {}}, format="json"
    )
    assert response.status_code == 202, response.content
    request_id = response["X-Request-ID"]
    export_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if AuditExport.objects.get(pk=export_id).status in ("done", "failed"):
            break
        time.sleep(0.3)
    live_worker.stop()  # flush its log
    # then: the worker's log line of that task names the request
    task_lines = [line for line in live_worker.log().splitlines() if "audit.export_run[" in line and "succeeded" in line]
    assert task_lines, live_worker.log()[-3000:]
    assert f"[{request_id}]" in task_lines[-1], task_lines
    # and the audit entries the request and its task wrote carry it as their correlation id
    assert AuditEntry.objects.filter(cid=request_id).exists()
