"""Shared test set-up: both database aliases, real-server markers, factories and roles."""

from __future__ import annotations

import pytest

from tests.servers import server_required

SERVER_MARKERS = ("postgres", "mariadb", "redis")


def pytest_collection_modifyitems(config, items):
    for item in items:
        marker = item.get_closest_marker("django_db")
        # Profiles live in "default", their data keys in "keystore": tests use both by default.
        if marker is not None and "databases" not in marker.kwargs:
            item.add_marker(pytest.mark.django_db(*marker.args, databases="__all__", **marker.kwargs), append=False)


def pytest_runtest_setup(item):
    for kind in SERVER_MARKERS:
        if item.get_closest_marker(kind) is None:
            continue
        server_required(kind)


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing():
    # PBKDF2's deliberate slowness buys nothing in tests and costs minutes.
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


_DB_FIXTURES = ("db", "transactional_db", "live_server", "django_db_reset_sequences", "django_db_serialized_rollback")


@pytest.fixture(autouse=True)
def _evidence_invariant(request):
    """After every test that used a database: the chains verify and consent state equals events.

    The database fixture is requested first, so this check runs before its rollback or flush,
    on exactly what the test left behind (see tests/invariants.py).
    """
    marker = request.node.get_closest_marker("django_db")
    uses_db = marker is not None or any(name in request.fixturenames for name in _DB_FIXTURES)
    if not uses_db or request.node.get_closest_marker("tampers_evidence"):
        yield
        return
    if marker is not None:
        request.getfixturevalue("_django_db_helper")
    else:
        request.getfixturevalue(next(name for name in _DB_FIXTURES if name in request.fixturenames))
    yield
    from django.db import connections

    if any(conn.needs_rollback for conn in connections.all(initialized_only=True)):
        # The test ended inside a transaction it broke on purpose (an expected database error):
        # nothing it wrote can be read or will survive, so there is nothing to check.
        return
    from tests.invariants import evidence_problems

    problems = evidence_problems()
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        pytest.fail(
            f"evidence invariant broken after this test:\n  {shown}{more}\n"
            "(a test that breaks evidence on purpose carries @pytest.mark.tampers_evidence)",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _fresh_rate_limits(request):
    """No rate-limit counter from an earlier test: they live in the shared cache (Redis, or the
    database cache, whose table a transactional test's flush leaves alone)."""
    from django.conf import settings

    if "DatabaseCache" in settings.CACHES["default"]["BACKEND"]:
        marker = request.node.get_closest_marker("django_db")
        if marker is None and not any(name in request.fixturenames for name in _DB_FIXTURES):
            yield  # no database, so no counter either
            return
        if marker is not None:
            request.getfixturevalue("_django_db_helper")
        else:
            request.getfixturevalue(next(name for name in _DB_FIXTURES if name in request.fixturenames))
    from django.core.cache import cache

    rate_limit_counters_clear(cache)
    yield


def rate_limit_counters_clear(cache) -> None:
    """Delete the rate-limit counters (governance/access/throttling.py) in ``cache``: only those in
    a Redis database (it may hold other things), the whole table of a database cache."""
    from governance.access.throttling import KEY_PREFIX

    if type(cache).__name__ == "RedisCache":
        client = cache._cache.get_client(write=True)
        for key in client.scan_iter(match=f"*{KEY_PREFIX}:*"):
            client.delete(key)
    else:
        cache.clear()


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    from governance.crypto.envelope import dek_cache

    dek_cache.clear()
    yield
    dek_cache.clear()


@pytest.fixture
def live_worker(transactional_db):
    """A real Celery worker process on the test databases; killed and restartable by the test."""
    from tests.worker import LiveWorker, broker_purge

    broker_purge()
    worker = LiveWorker().start()
    yield worker
    worker.stop()


@pytest.fixture
def workspaces(db):
    from governance.subjects.models import Jurisdiction, Workspace

    return (
        Workspace.objects.create(slug="shop-jp", name="Shop JP", default_jurisdiction=Jurisdiction.JP),
        Workspace.objects.create(slug="shop-eu", name="Shop EU", default_jurisdiction=Jurisdiction.EU),
    )


@pytest.fixture
def role_users(db, workspaces):
    """One user per role; the support agent is assigned to the first workspace only."""
    from tests.factories import make_role_users

    return make_role_users(workspaces)


@pytest.fixture
def api_client():
    """An API client whose ``force_authenticate(user)`` signs in with the second factor entered."""
    from tests.accounts import OtpVerifiedAPIClient

    return OtpVerifiedAPIClient()


@pytest.fixture
def client():
    """A client whose ``force_login(user)`` signs in with the second factor entered (tests/accounts.py).

    Tests of the second-factor gate itself use a plain ``django.test.Client``.
    """
    from tests.accounts import OtpVerifiedClient

    return OtpVerifiedClient()


@pytest.fixture
def admin_client(db, admin_user):
    """pytest-django's superuser client, signed in with the second factor entered."""
    from tests.accounts import OtpVerifiedClient

    client = OtpVerifiedClient()
    client.force_login(admin_user)
    return client
