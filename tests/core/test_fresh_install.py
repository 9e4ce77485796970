"""A fresh install as docs/operations.md describes it: one ``manage.py migrate`` per database."""

import os
import subprocess
import sys
from pathlib import Path

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
