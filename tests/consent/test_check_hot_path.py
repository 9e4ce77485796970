"""The check hot path: routed first, one round trip, survives a dropped database connection."""

from __future__ import annotations

import gc
from datetime import timedelta

import environ
import psycopg
import pytest
from django.db import OperationalError, connections
from django.db.backends.postgresql.base import DatabaseWrapper
from django.test.utils import CaptureQueriesContext
from django.urls import resolve, reverse

from consent.api import consent_check_fast
from consent.ratelimit import _block
from governance.dbread import PreparedRead, read_without_ping
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


_PROBE = PreparedRead(
    name="mamoru_test_probe",
    sql="SELECT %s::int8, %s::text, %s::bool, %s::timestamptz, NULL::text, %s::int4 WHERE %s::text <> 'none'",
    columns=("int", "text", "bool", "timestamptz", "text", "int"),
)
_PROBE_PARAMS = [-9_000_000_000, "同意 ✓", True, "1999-12-31T23:59:59.123456+09:00", 7, "row"]


def _prepared_names(wrapper) -> set[str]:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.postgres
@pytest.mark.django_db
def test_prepared_read_decodes_like_a_django_cursor(pg_alias):
    with pg_alias.cursor() as cursor:
        cursor.execute(_PROBE.sql, _PROBE_PARAMS)
        expected = cursor.fetchone()
    assert _PROBE.fetchone(_PROBE_PARAMS, using="pg_probe") == expected
    assert "mamoru_test_probe" in _prepared_names(pg_alias)  # it went through libpq's prepared call
    assert _PROBE.fetchone([*_PROBE_PARAMS[:-1], "none"], using="pg_probe") is None


@pytest.mark.postgres
@pytest.mark.django_db
def test_prepared_read_prepares_again_when_the_connection_lost_the_statement(pg_alias):
    _PROBE.fetchone(_PROBE_PARAMS, using="pg_probe")
    with pg_alias.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler or DISCARD ALL does behind our back
    assert "mamoru_test_probe" not in _prepared_names(pg_alias)
    assert _PROBE.fetchone(_PROBE_PARAMS, using="pg_probe")[0] == -9_000_000_000
    assert "mamoru_test_probe" in _prepared_names(pg_alias)


@pytest.mark.postgres
@pytest.mark.django_db
def test_prepared_read_reconnects_after_the_server_dropped_the_connection(pg_alias):
    pid = _backend_pid(pg_alias)
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    row = read_without_ping(lambda: _PROBE.fetchone(_PROBE_PARAMS, using="pg_probe"), using="pg_probe")
    assert row[1] == "同意 ✓"
    assert _backend_pid(pg_alias) != pid


@pytest.mark.postgres
@pytest.mark.django_db
def test_prepared_read_errors_on_a_live_connection_are_django_errors_and_not_retried(pg_alias):
    sleeper = PreparedRead(name="mamoru_test_sleep", sql="SELECT 1 FROM pg_sleep(%s)", columns=("int",))
    with pg_alias.cursor() as cursor:
        cursor.execute("SET statement_timeout = 1")
    pid = _backend_pid(pg_alias)
    try:
        with pytest.raises(OperationalError, match="statement timeout"):
            read_without_ping(lambda: sleeper.fetchone([1], using="pg_probe"), using="pg_probe")
        assert _backend_pid(pg_alias) == pid  # not treated as a dead connection
    finally:
        with pg_alias.cursor() as cursor:
            cursor.execute("RESET statement_timeout")


@pytest.mark.postgres
@pytest.mark.django_db
def test_prepared_read_stays_visible_to_query_logging(pg_alias):
    with CaptureQueriesContext(pg_alias) as captured:
        assert _PROBE.fetchone(_PROBE_PARAMS, using="pg_probe")[5] == 7
    # Debug tools and assertNumQueries see the statement: it went through a Django cursor.
    assert "-9000000000::int8" in captured.captured_queries[-1]["sql"]


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


@pytest.mark.django_db
def test_check_refuses_a_revoked_key_on_its_next_request(server, keys, django_assert_num_queries):
    """No timed re-verification: the keys revision in the check's statement says when to."""
    from consent.models import SiteKey
    from consent.services import site_key_revoke

    params = {"browser_id": "browser-0001", "purpose": "analytics"}
    assert server.get(CHECK, params).status_code == 200
    with django_assert_num_queries(1):  # the cached key is confirmed by the check's own statement
        assert server.get(CHECK, params).status_code == 200
    site_key_revoke(key=SiteKey.objects.get(kind="secret"))  # the cache is not told (another process)
    refused = server.get(CHECK, params)
    assert refused.status_code == 401
    assert refused.json()["code"] == "bad_site_key"


@pytest.mark.django_db
def test_check_refuses_a_key_whose_rotation_grace_ended(server, keys):
    from consent.models import SiteKey
    from consent.services import site_key_rotate

    params = {"browser_id": "browser-0001", "purpose": "analytics"}
    assert server.get(CHECK, params).status_code == 200
    _new, new_secret = site_key_rotate(key=SiteKey.objects.get(kind="secret"), grace=timedelta(0))
    assert server.get(CHECK, params).status_code == 401
    server.credentials(HTTP_AUTHORIZATION=f"Bearer {new_secret}")
    assert server.get(CHECK, params).status_code == 200


@pytest.mark.django_db
def test_check_sees_a_workspace_changed_in_the_admin(server, site):
    """A saved workspace (or site, or key) bumps the keys revision: cached copies are replaced."""
    from governance.subjects.models import Jurisdiction, Workspace

    params = {"browser_id": "b-unknown", "purpose": "analytics"}
    assert server.get(CHECK, params).json()["reason"] == "no_consent"  # EU: opt-in
    workspace = Workspace.objects.get(pk=site.workspace_id)
    workspace.default_jurisdiction = Jurisdiction.US_CA
    workspace.save()  # as the admin does; this process's cached key still holds the EU workspace
    assert server.get(CHECK, params).json()["reason"] == "opt_out_default"


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "query"), [
    (CHECK, "browser_id=browser-0001&purpose=analytics"),  # answered by ConsentCheckMiddleware
    ("/.well-known/gpc.json", ""),  # a plain view through the whole middleware stack
], ids=["check", "full-stack"])
def test_requests_leave_no_cyclic_garbage(keys, path, query):
    """Each request is freed by reference counting (ReleaseRequestMiddleware breaks the cycles
    the auth and message middleware make), so the check does not feed the garbage collector's
    pauses."""
    import io

    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    handler = WSGIHandler()
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "HTTP_AUTHORIZATION": f"Bearer {keys['secret']}", "REMOTE_ADDR": "127.0.0.1",
    }

    def one_check() -> None:
        statuses = []
        response = handler({**environ, "wsgi.input": io.BytesIO()}, lambda status, headers: statuses.append(status))
        b"".join(response)
        response.close()  # what the WSGI server does once the body is sent
        assert statuses == ["200 OK"]

    # As Django's test client does: keep the test's database connection across "requests".
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        one_check()
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        for _ in range(5):
            one_check()
        gc.collect()
        leaked = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert leaked == []
