"""Configuration: production settings pass `check --deploy`; missing secrets fail loudly."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _run(env_extra: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAMORU_", "DJANGO_", "DATABASE_URL"))}
    env.update(env_extra)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _run(
        {
            "MAMORU_DEPLOYMENT": "production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "MAMORU_MASTER_KEYS": f"prod1:{_key()}",
            "MAMORU_BLIND_INDEX_KEY": _key(),
            "MAMORU_PROOF_KEY": _key(),
            "ALLOWED_HOSTS": "privacy.example.com",
            "MAMORU_PUBLIC_URL": "https://privacy.example.com",
            "MAMORU_METRICS_TOKEN": "metrics-token-for-the-check",
            "MAMORU_VAR_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'main.sqlite3'}",
            "MAMORU_KEYSTORE_URL": f"sqlite:///{tmp_path / 'keys.sqlite3'}",
        },
        "check", "--deploy", "--fail-level", "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_secrets(tmp_path):
    result = _run({"MAMORU_DEPLOYMENT": "production", "MAMORU_VAR_DIR": str(tmp_path)}, "check")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr and "MAMORU_MASTER_KEYS" in result.stderr
    assert not (tmp_path / "dev_secrets.json").exists()


def test_keystore_in_the_main_database_fails_the_deploy_check(tmp_path):
    url = f"sqlite:///{tmp_path / 'same.sqlite3'}"
    result = _run(
        {
            "MAMORU_DEPLOYMENT": "production", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "MAMORU_MASTER_KEYS": f"prod1:{_key()}", "MAMORU_BLIND_INDEX_KEY": _key(), "MAMORU_PROOF_KEY": _key(),
            "ALLOWED_HOSTS": "privacy.example.com", "MAMORU_VAR_DIR": str(tmp_path),
            "DATABASE_URL": url, "MAMORU_KEYSTORE_URL": url,
        },
        "check", "--deploy",
    )
    assert result.returncode != 0 and "crypto.E012" in result.stderr


def test_embedded_default_generates_dev_secrets_once(tmp_path):
    env = {"MAMORU_VAR_DIR": str(tmp_path)}
    first = _run(env, "check")
    assert first.returncode == 0, first.stderr
    content = (tmp_path / "dev_secrets.json").read_text()
    assert oct((tmp_path / "dev_secrets.json").stat().st_mode)[-3:] == "600"
    _run(env, "check")
    assert (tmp_path / "dev_secrets.json").read_text() == content
