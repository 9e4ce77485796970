"""A fresh install as docs/operations.md describes it: one ``manage.py migrate`` per database."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_migrate_on_an_empty_database_succeeds(tmp_path):
    # given an empty var directory (the embedded default databases do not exist yet)
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MAMORU_KEYSTORE_URL"}}
    env["MAMORU_VAR_DIR"] = str(tmp_path / "var")
    # when the operator migrates both databases, with the system checks migrate runs
    for extra in ([], ["--database", "keystore"]):
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", *extra],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        # then it succeeds (database checks must not query tables migrate has not created yet)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


# What an analyst does first on a fresh install: scan a text (pii.scan_text). The check runs in the
# migrated database's own process; it prints the status of the POST and the role's permissions.
ANALYST_SCANS = """
import json
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

user = get_user_model().objects.create_user("analyst", "analyst@example.org", "x-Fresh-install-1")
user.groups.add(Group.objects.get(name="privacy_analyst"))
client = Client()
client.force_login(user)
from tests.accounts import otp_verified_login  # the analyst entered a second factor
otp_verified_login(client, user)
response = client.post("/api/v1/scan/", {"texts": ["hello"], "language": "en"},
                       content_type="application/json")
print(json.dumps({"status": response.status_code,
                  "perms": Group.objects.get(name="privacy_analyst").permissions.count()}))
"""


def _fresh_env(tmp_path, database_url: str | None = None, keystore_url: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MAMORU_KEYSTORE_URL"}}
    env["MAMORU_VAR_DIR"] = str(tmp_path / "var")
    if database_url:
        env["DATABASE_URL"], env["MAMORU_KEYSTORE_URL"] = database_url, keystore_url
    return env


def _run(args: list[str], env: dict) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def _one_migrate_then_scan(env: dict) -> dict:
    import json

    _run(["migrate", "--noinput"], env)
    _run(["migrate", "--noinput", "--database", "keystore"], env)
    return json.loads(_run(["shell", "-c", ANALYST_SCANS], env).strip().splitlines()[-1])


def test_after_one_migrate_the_analyst_can_scan(tmp_path):
    # given a brand new embedded database, migrated once (no seed_demo, no second migrate)
    outcome = _one_migrate_then_scan(_fresh_env(tmp_path))
    # then the role has every permission of every app (pii.* comes after access in INSTALLED_APPS)
    assert outcome["status"] == 200, outcome
    assert outcome["perms"] > 3, outcome


@pytest.mark.postgres
def test_after_one_migrate_the_analyst_can_scan_on_postgresql(tmp_path):
    import psycopg

    from tests.servers import POSTGRES_ADMIN_URL

    names = [f"m_plumbing_fresh_{uuid.uuid4().hex[:8]}", f"m_plumbing_fresh_{uuid.uuid4().hex[:8]}_keys"]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = POSTGRES_ADMIN_URL.replace("postgresql://", "postgres://").rsplit("/", 1)[0]
        outcome = _one_migrate_then_scan(_fresh_env(tmp_path, f"{base}/{names[0]}", f"{base}/{names[1]}"))
        assert outcome["status"] == 200, outcome
        assert outcome["perms"] > 3, outcome
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
