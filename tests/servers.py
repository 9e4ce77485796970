"""Real servers the integration tests use, and how to reach them.

Locally a test marked ``postgres``/``mariadb``/``redis`` is skipped with a reason when its server
does not answer; with ``CI=true`` it fails instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import quote

POSTGRES_ADMIN_URL = os.environ.get("MAMORU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN_URL = os.environ.get("MAMORU_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("MAMORU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

ADDRESSES = {
    "postgres": ("127.0.0.1", 5432),
    "mariadb": ("127.0.0.1", 3306),
    "redis": ("127.0.0.1", 6379),
}


def reachable(kind: str, timeout: float = 1.0) -> bool:
    host, port = ADDRESSES[kind]
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def server_required(kind: str) -> None:
    """Skip (locally) or fail (with ``CI=true``) when the ``kind`` server does not answer."""
    import pytest

    if reachable(kind):
        return
    message = f"{kind} server is not reachable on 127.0.0.1"
    if in_ci():
        pytest.fail(f"{message} (CI=true: server tests must run, not skip)", pytrace=False)
    pytest.skip(message)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL (django-environ form) for a Django connection's settings."""
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    if engine.endswith("sqlite3"):
        return f"sqlite:///{name}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[engine.rsplit(".", 1)[-1]]
    user = quote(settings_dict.get("USER") or "")
    password = quote(settings_dict.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"{scheme}://{auth}{settings_dict.get('HOST') or '127.0.0.1'}{port}/{name}"
