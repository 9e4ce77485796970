"""/metrics: protected, labelled by view (no raw paths), every documented family present."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

FAMILIES = {
    "mamoru_http_requests", "mamoru_http_request_duration_seconds",
    "mamoru_dsr_requests_open", "mamoru_dsr_nodes", "mamoru_dsr_node_failed_attempts",
    "mamoru_dsr_oldest_open_request_age_seconds",
    "mamoru_consent_events_recorded",
    "mamoru_audit_verification_last_run_timestamp_seconds", "mamoru_audit_verification_ok",
    "mamoru_audit_verification_problems",
    "mamoru_worker_last_seen_timestamp_seconds", "mamoru_workers_alive",
    "mamoru_metrics_source_up",
}


def _families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _samples(family) -> list:
    return [(sample.labels, sample.value) for sample in family.samples]


@pytest.fixture
def verification_run(db):
    from audit.models_verification import VerificationRun

    now = timezone.now()
    return VerificationRun.objects.create(
        started_at=now - timedelta(seconds=3), finished_at=now, full=False, ok=False, checked=10,
        problem_count=2,
    )


@pytest.mark.django_db
def test_scrape_has_every_family_and_no_raw_path(client, verification_run):
    # given: traffic with personal data in the path and query, and an unknown path
    from governance.observability.models import WorkerHeartbeat

    WorkerHeartbeat.objects.create(hostname="celery@w1", started_at=timezone.now(), last_seen=timezone.now())
    client.get("/api/v1/consent/check?email=hanako%40example.com&workspace=shop-jp")
    client.get("/privacy/taro@example.jp/no-such-page")
    client.get("/healthz")
    # when
    response = client.get("/metrics")
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    families = _families(text)
    assert FAMILIES <= set(families), FAMILIES - set(families)
    for personal in ("hanako", "taro", "example.jp", "example.com", "no-such-page"):
        assert personal not in text, personal
    views = {labels["view"] for labels, _v in _samples(families["mamoru_http_requests"])}
    assert {"healthz", "<unmatched>"} <= views
    assert any("consent" in view for view in views), views
    # database state: the broken verification run, one live worker, every source answered
    ok = dict((labels["kind"], value) for labels, value in _samples(families["mamoru_audit_verification_ok"]))
    assert ok == {"incremental": 0.0}
    alive = dict((labels["role"], value) for labels, value in _samples(families["mamoru_workers_alive"]))
    assert alive["worker"] == 1.0
    up = {labels["source"]: value for labels, value in _samples(families["mamoru_metrics_source_up"])}
    assert up and all(value == 1.0 for value in up.values()), up


@pytest.mark.django_db
def test_dsr_queue_depth_and_failed_nodes(client, workspaces, mailoutbox):
    from dsr.models import DataSubjectRequest, RequestStatus, RequestTask, TaskStatus
    from dsr.services import dsr_request_submit

    # given: one request waiting for its code, one running with a failed and a finished node
    dsr_request_submit(workspace=workspaces[0], request_type="access", email="Hanako.Sato@Example.jp")
    running = dsr_request_submit(workspace=workspaces[1], request_type="erasure", email="jan.kowalski@example.pl")
    DataSubjectRequest.objects.filter(pk=running.pk).update(status=RequestStatus.RUNNING)
    RequestTask.objects.create(request=running, phase="access", node="shop.customers", status=TaskStatus.FAILED,
                               attempts=3)
    RequestTask.objects.create(request=running, phase="access", node="crm.contacts", status=TaskStatus.DONE)
    # when
    families = _families(client.get("/metrics").content.decode())
    # then
    requests = {labels["status"]: value for labels, value in _samples(families["mamoru_dsr_requests_open"])}
    assert requests["running"] == 1.0 and requests["pending_verification"] == 1.0
    nodes = {labels["status"]: value for labels, value in _samples(families["mamoru_dsr_nodes"])}
    assert nodes["failed"] == 1.0 and "done" not in nodes
    assert _samples(families["mamoru_dsr_node_failed_attempts"]) == [({}, 2.0)]


@override_settings(MAMORU_METRICS_TOKEN="s3cret-token")
def test_metrics_need_the_token_when_one_is_set(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    # a scrape by address from the container network, with the token
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token", REMOTE_ADDR="172.18.0.5",
                          HTTP_HOST="172.18.0.3:8000")
    assert response.status_code == 200


def test_without_a_token_only_loopback_may_scrape(client):
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code != 403


@pytest.mark.django_db
@override_settings(MAMORU_METRICS_TOKEN="", MAMORU_TRUSTED_PROXIES=["127.0.0.1", "::1"])
def test_without_a_token_a_request_forwarded_by_a_same_host_proxy_is_not_loopback(client):
    # issue 13 QA (/tmp/prompts/xff.py): nginx on this host connects from 127.0.0.1
    def status(**headers) -> int:
        return client.get("/metrics", REMOTE_ADDR="127.0.0.1", **headers).status_code

    # a remote client forwarded by the proxy, however it is spelled, is refused
    assert status(HTTP_X_FORWARDED_FOR="203.0.113.9") == 403
    assert status(HTTP_X_FORWARDED_FOR="203.0.113.9, 127.0.0.1") == 403
    assert status(HTTP_X_FORWARDED_FOR="127.0.0.1, 203.0.113.9") == 403  # an earlier hop counts too
    assert status(HTTP_X_FORWARDED_FOR="unknown") == 403
    assert status(HTTP_FORWARDED='for="[2001:db8::7]:443";proto=https') == 403
    assert status(HTTP_FORWARDED="for=unknown") == 403
    assert status(HTTP_FORWARDED="proto=https") == 403
    assert status(HTTP_X_REAL_IP="203.0.113.9") == 403
    # a scrape forwarded for a client on this host is still local
    assert status(HTTP_X_FORWARDED_FOR="127.0.0.1") != 403
    assert status(HTTP_X_FORWARDED_FOR="[::1]:51000, 127.0.0.1:80") != 403
    assert status(HTTP_FORWARDED='for="[::1]:9090"') != 403
    assert status() != 403


def test_check_deploy_warns_about_production_without_a_metrics_token():
    from django.core.checks import run_checks

    def ids() -> set[str]:
        return {message.id for message in run_checks(include_deployment_checks=True)}

    with override_settings(PRODUCTION=True, MAMORU_METRICS_TOKEN=""):
        assert "observability.W001" in ids()
    with override_settings(PRODUCTION=True, MAMORU_METRICS_TOKEN="s3cret-token"):
        assert "observability.W001" not in ids()
    with override_settings(PRODUCTION=False, MAMORU_METRICS_TOKEN=""):
        assert "observability.W001" not in ids()
