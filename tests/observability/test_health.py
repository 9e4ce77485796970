"""Health probes: /healthz is liveness without I/O, /readyz checks databases and broker."""

from __future__ import annotations

import socket

import pytest
from django.db import connections
from django.test import override_settings

from governance.celery import app as celery_app
from tests.servers import REDIS_URL, server_required


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    return port


@pytest.fixture
def broker_url(monkeypatch):
    """Point the Celery app at another broker for one test, then back."""
    original = celery_app.conf.broker_url
    original_options = dict(celery_app.conf.broker_transport_options or {})

    def use(url: str, options: dict | None = None) -> None:
        monkeypatch.setenv("CELERY_BROKER_URL", url)  # Celery reads the variable before its conf
        celery_app.conf.broker_url = url
        celery_app.conf.broker_transport_options = options or {}

    yield use
    celery_app.conf.broker_url = original
    celery_app.conf.broker_transport_options = original_options


@pytest.mark.django_db
def test_readyz_ok_names_every_check(client):
    # when
    response = client.get("/readyz")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "keystore", "broker", "cache"}
    assert all(check["status"] == "ok" for check in body["checks"].values())
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_readyz_503_when_the_broker_is_unreachable(client, broker_url):
    # given: a Redis broker on a port nothing listens on
    broker_url(f"redis://127.0.0.1:{_closed_port()}/8")
    # when
    response = client.get("/readyz")
    # then
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["keystore"]["status"] == "ok"


@pytest.mark.django_db
def test_readyz_503_when_the_key_store_is_unreachable(client):
    # given: the key store points at a server that is not there
    keystore = connections["keystore"]
    saved = dict(keystore.settings_dict)
    keystore.close()
    keystore.settings_dict.update(
        ENGINE="django.db.backends.postgresql", NAME="nowhere", HOST="127.0.0.1",
        PORT=str(_closed_port()), USER="x", PASSWORD="", OPTIONS={}, CONN_HEALTH_CHECKS=False,
    )
    try:
        response = client.get("/readyz")
    finally:
        keystore.close()
        keystore.settings_dict.clear()
        keystore.settings_dict.update(saved)
    # then
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["keystore"]["status"] == "error"
    assert checks["database"]["status"] == "ok"


@pytest.mark.django_db
def test_readyz_503_when_the_rate_limit_cache_is_unreachable(client):
    # given: CACHE_URL points at a Redis that is not there (issue 13 QA: the DSR portal answered
    # 503 rate_limit_unavailable while /readyz said ok)
    dead = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": f"redis://127.0.0.1:{_closed_port()}/7"}}
    with override_settings(CACHES=dead):
        # when
        response = client.get("/readyz")
    # then
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["cache"]["status"] == "error"
    assert checks["database"]["status"] == "ok"


@pytest.mark.django_db
def test_readyz_checks_a_live_redis_cache_and_leaves_no_key(client):
    server_required("redis")
    location = REDIS_URL.rsplit("/", 1)[0] + "/7"
    live = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location}}
    with override_settings(CACHES=live):
        from django.core.cache import caches

        cache = caches.create_connection("default")
        before = set(cache._cache.get_client().keys("*mamoru:readyz:*"))
        response = client.get("/readyz")
        after = set(cache._cache.get_client().keys("*mamoru:readyz:*"))
        cache.close()
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["cache"]["status"] == "ok"
    assert after == before


def test_healthz_answers_without_touching_a_database(client):
    # no django_db marker: any database access would raise here
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@override_settings(ALLOWED_HOSTS=["mamoru.example"], SECURE_SSL_REDIRECT=True)
@pytest.mark.django_db
def test_probes_answer_an_orchestrator_host_over_plain_http(client):
    # given: production settings (HTTPS redirect, one allowed host) and a probe by pod address
    for path in ("/healthz", "/readyz"):
        # when
        response = client.get(path, HTTP_HOST="10.1.2.3:8000")
        # then: neither 400 DisallowedHost nor a 301 to https
        assert response.status_code == 200, (path, response.status_code)
    # the rest of the site still redirects and checks the host
    assert client.get("/privacy/", HTTP_HOST="mamoru.example").status_code == 301
    assert client.get("/privacy/", HTTP_HOST="10.1.2.3:8000").status_code == 400


@pytest.mark.django_db
def test_probes_write_nothing_to_the_audit_log(client):
    from audit.models import AuditEntry

    before = AuditEntry.objects.count()
    for _ in range(3):
        client.get("/healthz")
        client.get("/readyz")
    assert AuditEntry.objects.count() == before
