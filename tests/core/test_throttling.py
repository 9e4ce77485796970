"""Rate limits counted in the shared cache (governance/access/throttling.py), on the database cache
and on Redis: exact counts, Retry-After, no address or e-mail in the cache, the client as the
audit log sees it (forwarded headers only from trusted proxies), and counts that stay exact when
two processes count at once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.test import RequestFactory

from governance.access.throttling import (
    Rate,
    RateLimited,
    check_rate_limit_cache,
    client_ip,
    throttle_hit,
    throttle_usage,
)
from tests.servers import REDIS_URL, database_url

ROOT = Path(__file__).resolve().parents[2]
DB_CACHE = {"BACKEND": "governance.cache_backends.DatabaseCache", "LOCATION": "mamoru_cache"}


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def shared_cache(request, settings, db):
    """The cache rate limits count in: the database cache, or Redis (keys under a prefix of their
    own, so that nothing else in that Redis database is touched)."""
    if request.param == "redis":
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                       "LOCATION": REDIS_URL, "KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}"}}
    else:
        settings.CACHES = {"default": DB_CACHE}
    cache = caches["default"]
    yield cache
    if request.param == "redis":
        client = cache._cache.get_client(write=True)
        for key in client.scan_iter(match=f"{settings.CACHES['default']['KEY_PREFIX']}:*"):
            client.delete(key)


def _stored_keys_and_values(cache) -> str:
    if type(cache).__name__ == "RedisCache":
        client = cache._cache.get_client()
        return " ".join(key.decode() for key in client.scan_iter(match=f"{cache.key_prefix}:*"))
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT cache_key, value FROM mamoru_cache")
        return " ".join(f"{k} {v}" for k, v in cursor.fetchall())


@pytest.mark.skipif(bool(os.environ.get("CACHE_URL")), reason="CACHE_URL chooses another cache")
@pytest.mark.django_db
def test_the_default_cache_is_the_database_cache_made_by_migrate():
    # given: no CACHE_URL; the test databases were made by `migrate`, nothing else
    # then: every process shares the database cache, its table is in the main database only
    assert settings.CACHES["default"]["BACKEND"] == "governance.cache_backends.DatabaseCache"
    assert "mamoru_cache" in connections["default"].introspection.table_names()
    assert "mamoru_cache" not in connections["keystore"].introspection.table_names()
    assert check_rate_limit_cache(None) == []


def test_a_process_local_cache_is_reported(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert [m.id for m in check_rate_limit_cache(None)] == ["access.W001"]


def test_a_limit_accepts_exactly_its_hits_then_says_when_to_retry(shared_cache):
    rate = Rate(limit=3, period=3600)
    # when
    counts = [throttle_hit(scope="t-submit", value="203.0.113.7", rate=rate).count for _ in range(3)]
    with pytest.raises(RateLimited) as refused:
        throttle_hit(scope="t-submit", value="203.0.113.7", rate=rate)
    # then
    assert counts == [1, 2, 3]
    assert refused.value.status_code == 429 and refused.value.code == "rate_limited"
    assert 0 < refused.value.retry_after <= 3600
    assert refused.value.extra["retry_after"] == refused.value.retry_after
    usage = throttle_usage(scope="t-submit", value="203.0.113.7", rate=rate)
    assert usage.count == 4 and usage.exceeded and 0 < usage.seconds_left <= 3600
    # another client, another scope: counters of their own
    assert throttle_hit(scope="t-submit", value="203.0.113.8", rate=rate).count == 1
    assert throttle_hit(scope="t-verify", value="203.0.113.7", rate=rate).count == 1


def test_the_cache_holds_no_address_and_no_e_mail(shared_cache):
    rate = Rate(limit=5, period=600)
    throttle_hit(scope="t-ip", value="203.0.113.77", rate=rate)
    throttle_hit(scope="t-mail", value="hanako.yamada@example.jp", rate=rate)
    stored = _stored_keys_and_values(shared_cache)
    assert stored.count("mamoru-rl:") == 2
    for secret in ("203.0.113.77", "hanako", "example.jp", "yamada"):
        assert secret not in stored


def _request(remote: str, forwarded: str | None = None):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **headers)


def test_the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy(settings):
    settings.MAMORU_TRUSTED_PROXIES = ["10.0.0.0/8"]
    # an untrusted peer chooses nothing by sending X-Forwarded-For
    assert client_ip(_request("198.51.100.9", "203.0.113.1")) == "198.51.100.9"
    # behind a trusted proxy: the nearest address the proxies did not add
    assert client_ip(_request("10.0.0.2", "203.0.113.1")) == "203.0.113.1"
    assert client_ip(_request("10.0.0.2", "198.51.100.66, 203.0.113.1, 10.0.0.3")) == "203.0.113.1"
    # IPv6: one subscriber's /64 is one client
    assert client_ip(_request("2001:db8:1:2:aaaa::1")) == client_ip(_request("2001:db8:1:2:bbbb::9"))
    assert client_ip(_request("2001:db8:1:2::1")) != client_ip(_request("2001:db8:1:3::1"))


COUNTER = """
import os, sys, time, uuid, django
django.setup()
from governance.access.throttling import Rate, RateLimited, throttle_hit
barrier = sys.argv[3]  # start together: both set up, then count at the same time
open(os.path.join(barrier, uuid.uuid4().hex), "w").close()
while len(os.listdir(barrier)) < 2:
    time.sleep(0.01)
accepted = 0
for _ in range(int(sys.argv[1])):
    try:
        throttle_hit(scope="t-race", value="198.51.100.1", rate=Rate(limit=int(sys.argv[2]), period=3600))
        accepted += 1
    except RateLimited:
        pass
print(accepted)
"""


@pytest.mark.parametrize("kind", ["database", pytest.param("redis", marks=pytest.mark.redis)])
def test_two_processes_counting_at_once_accept_exactly_the_limit(transactional_db, kind, tmp_path):
    # given: two processes on the same shared cache, each trying 120 hits against a limit of 150
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "governance.settings", "MAMORU_VAR_DIR": str(settings.VAR_DIR),
           "DATABASE_URL": database_url(connections["default"].settings_dict),
           "MAMORU_KEYSTORE_URL": database_url(connections["keystore"].settings_dict)}
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    if kind == "redis":
        env["CACHE_URL"] = f"{REDIS_URL}?key_prefix={prefix}"
    else:
        env.pop("CACHE_URL", None)
    # when: both count at the same time
    procs = [subprocess.Popen([sys.executable, "-c", COUNTER, "120", "150", str(tmp_path)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [proc.communicate(timeout=300) for proc in procs]
    # then: no count lost, none doubled — exactly 150 of 240 accepted
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _out, err in results]
    assert sum(int(out.strip().splitlines()[-1]) for out, _err in results) == 150
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)


@pytest.mark.parametrize("forwarded", ["garbage1", "unknown", "203.0.113.1, garbage7", "_hidden", "", "[::1"])
def test_a_forwarded_value_that_is_no_address_counts_as_the_proxy(settings, forwarded, monkeypatch):
    # QA issue 13: `garbageN` from a trusted proxy became a bucket of its own per value
    from audit import history
    settings.MAMORU_TRUSTED_PROXIES = ["10.0.0.0/8"]
    monkeypatch.setattr(history, "_not_address_warned", False)
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", REMOTE_PORT="40000",
                                   HTTP_X_FORWARDED_FOR=forwarded or " ", HTTP_X_FORWARDED_PORT="1234")
    assert client_ip(request) == "10.0.0.2"
    # the audit log records the same client (and the proxy's port, not the forwarded one)
    assert history.client_address(request) == ("10.0.0.2", 40000)


def test_a_proxy_forwarding_no_addresses_is_warned_about_once(settings, monkeypatch, caplog):
    from audit import history
    settings.MAMORU_TRUSTED_PROXIES = ["10.0.0.0/8"]
    monkeypatch.setattr(history, "_not_address_warned", False)
    with caplog.at_level("WARNING", logger="audit.history"):
        buckets = {client_ip(_request("10.0.0.2", f"garbage{i}")) for i in range(65)}
    assert buckets == {"10.0.0.2"}
    warnings = [r for r in caplog.records if r.name == "audit.history" and "not an IP address" in r.getMessage()]
    assert len(warnings) == 1 and "garbage0" in warnings[0].getMessage()
    # real addresses behind the same proxy still count one by one
    assert client_ip(_request("10.0.0.2", "203.0.113.5")) == "203.0.113.5"
    assert client_ip(_request("10.0.0.2", "[2001:db8:1:2::1]:443")) == "2001:db8:1:2::/64"
