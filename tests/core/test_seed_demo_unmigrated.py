"""``seed_demo`` before the databases are migrated (issue 13 QA: a raw "no such table:
crypto_datakey" traceback when only ``migrate`` had run): a clear error naming the migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _manage(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_seed_demo_before_the_keystore_migrate_says_what_to_run(tmp_path):
    # given a fresh embedded install where the operator ran only the first of the two migrates
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MAMORU_KEYSTORE_URL"}}
    env["MAMORU_VAR_DIR"] = str(tmp_path / "var")
    migrated = _manage(["migrate", "--noinput"], env)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    # when they seed the demo
    seeded = _manage(["seed_demo", "--quiet-logins"], env)
    # then it stops before writing anything, with a CommandError naming the missing migrate
    assert seeded.returncode == 1, seeded.stdout[-2000:] + seeded.stderr[-3000:]
    assert "Traceback" not in seeded.stderr and "no such table" not in seeded.stderr, seeded.stderr[-3000:]
    assert "CommandError: Not migrated yet: the 'keystore' database." in seeded.stderr, seeded.stderr
    assert "`python manage.py migrate --database keystore`" in seeded.stderr
    assert "Seeding" not in seeded.stdout
    assert not (tmp_path / "var" / "demo_credentials.json").exists()


def test_seed_demo_on_nothing_migrated_names_both_migrates(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MAMORU_KEYSTORE_URL"}}
    env["MAMORU_VAR_DIR"] = str(tmp_path / "var")
    seeded = _manage(["seed_demo", "--quiet-logins"], env)
    assert seeded.returncode == 1 and "Traceback" not in seeded.stderr, seeded.stderr[-3000:]
    assert "the 'default' database, the 'keystore' database" in seeded.stderr, seeded.stderr
    assert ("Run `python manage.py migrate` and `python manage.py migrate --database keystore` first"
            in seeded.stderr), seeded.stderr


@pytest.mark.postgres
def test_seed_demo_before_the_keystore_migrate_on_postgresql(tmp_path):
    import psycopg

    from tests.servers import POSTGRES_ADMIN_URL

    suffix = uuid.uuid4().hex[:8]
    names = [f"m_seed_unmigrated_{suffix}", f"m_seed_unmigrated_{suffix}_keys"]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = POSTGRES_ADMIN_URL.replace("postgresql://", "postgres://").rsplit("/", 1)[0]
        env = {**os.environ, "MAMORU_VAR_DIR": str(tmp_path / "var"),
               "DATABASE_URL": f"{base}/{names[0]}", "MAMORU_KEYSTORE_URL": f"{base}/{names[1]}"}
        migrated = _manage(["migrate", "--noinput"], env)
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        seeded = _manage(["seed_demo", "--quiet-logins"], env)
        assert seeded.returncode == 1 and "Traceback" not in seeded.stderr, seeded.stderr[-3000:]
        assert "Not migrated yet: the 'keystore' database." in seeded.stderr, seeded.stderr
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.django_db(databases="__all__")
def test_migrated_databases_pass_the_check():
    from governance.demo.management.commands.seed_demo import unmigrated_databases

    assert unmigrated_databases() == []
