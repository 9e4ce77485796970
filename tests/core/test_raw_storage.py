"""No plaintext personal data at rest: read the raw database (SQLite file or a pg_dump) and search
for every seeded e-mail, phone and name (GDPR Art. 32(1)(a), APPI 26条 high-level encryption)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from django.db import connection

from governance.subjects.models import Identity
from tests.factories import make_profile


def _raw_bytes() -> bytes:
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # Read by a child process: closing a descriptor of the database file here would drop the
        # POSIX locks this process's SQLite connections hold (SQLite, "How To Corrupt", 2.2).
        return subprocess.run(["cat", str(settings_dict["NAME"])], check=True, capture_output=True,
                              timeout=120).stdout
    if connection.vendor == "postgresql":
        if shutil.which("pg_dump") is None:
            pytest.fail("pg_dump is needed for the PostgreSQL raw-storage check")
        cmd = ["pg_dump", "--data-only", "-h", settings_dict.get("HOST") or "127.0.0.1",
               "-p", str(settings_dict.get("PORT") or 5432), "-U", settings_dict.get("USER") or "postgres",
               settings_dict["NAME"]]
        return subprocess.run(cmd, check=True, capture_output=True, timeout=120).stdout
    pytest.fail(f"no raw reader for {connection.vendor}")


@pytest.mark.django_db(transaction=True)
def test_seeded_personal_data_is_not_in_the_raw_database(workspaces):
    secrets_seen = []
    for n in range(15):
        locale = "ja_JP" if n % 2 else "en_US"
        profile = make_profile(workspaces[n % 2], locale=locale, seed=100 + n)
        for identity in Identity.objects.filter(profile=profile):
            secrets_seen.append(identity.value)
        secrets_seen += [profile.full_name, profile.address]
        if profile.kana_name:
            secrets_seen.append(profile.kana_name)
    raw = _raw_bytes()
    assert len(raw) > 10_000
    found = [value for value in secrets_seen if value and value.encode("utf-8") in raw]
    assert found == [], f"plaintext found at rest: {found[:5]}"
    # The national phone form and the local part of e-mails are absent too.
    for value in secrets_seen:
        if value and value.startswith("+81"):
            assert ("0" + value[3:]).encode() not in raw
