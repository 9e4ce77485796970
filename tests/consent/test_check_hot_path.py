"""The check hot path: routed first, one round trip, survives a dropped database connection."""

from __future__ import annotations

import gc

import environ
import psycopg
import pytest
from django.db import OperationalError, connections
from django.db.backends.postgresql.base import DatabaseWrapper
from django.urls import resolve, reverse

from consent.api import consent_check_fast
from consent.ratelimit import _block
from governance.dbread import read_without_ping
from tests.servers import POSTGRES_ADMIN_URL

CHECK = "/api/v1/consent/check"


def test_check_is_routed_ahead_of_the_nested_includes():
    match = resolve(CHECK)
    assert match.func is consent_check_fast
    assert reverse("consent-check") == CHECK
    # Mounted first: the resolver tries nothing before it (not the admin, not every app's routes).
    assert len(match.tried) == 1


def test_rate_limit_blocks_are_one_percent_of_the_limit():
    assert _block(5) == 1
    assert _block(6000) == 60
    assert _block(100_000_000) == 1000


@pytest.fixture
def pg_alias():
    """A Django connection to the real PostgreSQL server under its own alias (in every CI pass)."""
    config = {
        **environ.Env.db_url_config(POSTGRES_ADMIN_URL), "CONN_MAX_AGE": 600, "CONN_HEALTH_CHECKS": True,
        "AUTOCOMMIT": True, "ATOMIC_REQUESTS": False, "TIME_ZONE": None, "OPTIONS": {}, "TEST": {},
    }
    wrapper = DatabaseWrapper(config, alias="pg_probe")
    connections["pg_probe"] = wrapper
    yield wrapper
    wrapper.close()
    del connections["pg_probe"]


def _backend_pid(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db
def test_read_without_ping_reconnects_when_the_server_dropped_the_connection(pg_alias):
    pid = read_without_ping(lambda: _backend_pid(pg_alias), using="pg_probe")
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0] is True
    # The request's first query is not preceded by a ping: it fails, reconnects and runs again.
    again = read_without_ping(lambda: _backend_pid(pg_alias), using="pg_probe")
    assert again != pid


@pytest.mark.postgres
@pytest.mark.django_db
def test_read_without_ping_does_not_retry_on_a_live_connection(pg_alias):
    calls = []

    def slow():
        calls.append(1)
        with pg_alias.cursor() as cursor:
            cursor.execute("SET statement_timeout = 1")
            try:
                cursor.execute("SELECT pg_sleep(1)")
            finally:
                cursor.execute("RESET statement_timeout")

    with pytest.raises(OperationalError):
        read_without_ping(slow, using="pg_probe")
    assert calls == [1]


def test_web_process_start_up_freezes_long_lived_objects():
    from governance.startup import web_process_ready

    try:
        web_process_ready()
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


@pytest.mark.django_db
def test_check_sees_a_purpose_published_by_another_process(server, purposes):
    """No periodic reload on the check: the catalogue revision in its statement says when to."""
    from consent.selectors import catalogue
    from consent.services import purpose_version_draft, purpose_version_publish
    from governance.subjects.models import Jurisdiction

    params = {"browser_id": "b-new-visitor", "purpose": "analytics"}
    before = server.get(CHECK, params).json()
    assert (before["allowed"], before["reason"]) == (False, "no_consent")
    stale = (catalogue.by_code, catalogue.by_id, catalogue.revision, catalogue.loaded_at)

    draft = purpose_version_draft(purpose=purposes["analytics"], defaults={j: "opt_out" for j in Jurisdiction.values})
    purpose_version_publish(version=draft)
    # This process never heard of it (as if another worker had published it).
    catalogue.by_code, catalogue.by_id, catalogue.revision, catalogue.loaded_at = stale

    after = server.get(CHECK, params).json()
    assert (after["allowed"], after["reason"], after["purpose_version"]) == (True, "opt_out_default", draft.version)
    assert catalogue.revision == stale[2] + 1
