"""The in-process site-key cache: revision-confirmed reuse, quick revocation, bounded LRUs."""

from __future__ import annotations

import pytest

from consent import authentication

STATE = "/api/v1/consent/state"


@pytest.fixture
def lookups(monkeypatch):
    """Every key verification that reaches the database, by secret (a spy around the real one)."""
    seen: list[str] = []
    real = authentication._resolve

    def spy(secret, revision):
        seen.append(secret)
        return real(secret, revision)

    monkeypatch.setattr(authentication, "_resolve", spy)
    return seen


@pytest.mark.django_db
def test_a_stale_cached_key_is_confirmed_by_the_revision_not_verified_again(server, keys, lookups, monkeypatch):
    # given: every cached key counts as stale at once
    monkeypatch.setattr(authentication, "KEY_CACHE_SECONDS", 0.0)
    params = {"browser_id": "browser-0001"}
    assert server.get(STATE, params).status_code == 200
    # when
    for _ in range(3):
        assert server.get(STATE, params).status_code == 200
    # then: verified once; the later requests only read the revision
    assert lookups == [keys["secret"]]


@pytest.mark.django_db
def test_other_endpoints_refuse_a_revoked_key_once_its_revision_is_confirmed(server, monkeypatch):
    from consent.models import SiteKey
    from consent.services import site_key_revoke

    monkeypatch.setattr(authentication, "KEY_CACHE_SECONDS", 0.0)
    params = {"browser_id": "browser-0001"}
    assert server.get(STATE, params).status_code == 200
    # when: revoked elsewhere; this process's cache is not told
    site_key_revoke(key=SiteKey.objects.get(kind="secret"))
    refused = server.get(STATE, params)
    # then
    assert refused.status_code == 401 and refused.json()["code"] == "bad_site_key"


@pytest.mark.django_db
def test_within_the_cache_window_no_query_confirms_the_key(server, keys, lookups):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    params = {"browser_id": "browser-0001"}
    assert server.get(STATE, params).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert server.get(STATE, params).status_code == 200
    assert not any("consent_consentrevision" in q["sql"] for q in queries.captured_queries)
    assert lookups == [keys["secret"]]


@pytest.mark.django_db
def test_spraying_unknown_keys_does_not_evict_real_ones(keys, lookups, monkeypatch):
    # given: a small cache for unknown keys
    monkeypatch.setattr(authentication, "UNKNOWN_KEY_CACHE_SIZE", 5)
    assert authentication.credential_for(keys["secret"]) is not None
    # when: far more random keys than the unknown-key cache holds
    bad = [f"mcsk_bad_{n:04d}" for n in range(50)]
    for secret in bad:
        assert authentication.credential_for(secret) is None
    # then: the real key is still cached; the newest unknown key too, the oldest was evicted
    assert authentication.credential_for(keys["secret"]) is not None
    assert authentication.credential_for(bad[-1]) is None
    assert authentication.credential_for(bad[0]) is None
    assert lookups == [keys["secret"], *bad, bad[0]]
    assert len(authentication._cache.unknown) == 5


@pytest.mark.django_db
def test_known_keys_are_evicted_least_recently_used_first(site, lookups, monkeypatch):
    from consent.models import KeyKind
    from consent.services import site_key_create

    monkeypatch.setattr(authentication, "KEY_CACHE_SIZE", 2)
    secrets = [site_key_create(site=site, kind=KeyKind.SECRET)[1] for _ in range(3)]
    authentication.credential_for(secrets[0])
    authentication.credential_for(secrets[1])
    authentication.credential_for(secrets[0])  # used again: secrets[1] is now the oldest
    authentication.credential_for(secrets[2])  # evicts secrets[1]
    lookups.clear()
    for secret in (secrets[2], secrets[0], secrets[1]):  # the two kept ones first: hits do not evict
        assert authentication.credential_for(secret) is not None
    assert lookups == [secrets[1]]


@pytest.mark.django_db
def test_a_used_key_shows_when_it_was_last_used(server, keys):
    from consent.models import ConsentRevision, SiteKey

    revision = ConsentRevision.objects.filter(pk=1).values_list("keys", flat=True).first()
    assert SiteKey.objects.get(kind="secret").last_used_at is None
    assert server.get("/api/v1/consent/check", {"browser_id": "browser-0001", "purpose": "analytics"}).status_code == 200
    assert SiteKey.objects.get(kind="secret").last_used_at is not None
    assert SiteKey.objects.get(kind="publishable").last_used_at is None
    # Stamping the use is not a change of the key: cached keys stay valid everywhere.
    assert ConsentRevision.objects.filter(pk=1).values_list("keys", flat=True).first() == revision
